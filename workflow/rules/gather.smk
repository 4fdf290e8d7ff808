# Every sharded stage's shard tables, concatenated in shard order into the stage's table (so
# the shard count never changes it), failures logged by reason. One definition makes the
# gather_<stage> rule of each sharded stage: stage -> (its table, the table's kind in
# lib/schemas/tables.py).
GATHERED = {
    "download": ("results/download.csv", "download"),
    "validate": ("results/videos.csv", "videos"),
    "augment": ("results/clips.csv", "clips"),
    "features": ("results/features_handcrafted.csv", "features_stage"),
    "scale": ("results/scaled.csv", "scaled"),
    "scaled_features": ("results/features_scaled.csv", "features_stage"),
    "signatures": ("results/signatures.csv", "signatures"),
}
# Ahead of the deep models' training, like scaled_features itself: the permutation tests, the
# longest jobs, wait for these features.
GATHER_PRIORITY = {"scaled_features": 10}

for stage, (table, kind) in GATHERED.items():

    rule:
        name:
            f"gather_{stage}"
        input:
            gather.shards(f"results/shards/{stage}/{{scatteritem}}.csv"),
        output:
            table,
        log:
            f"logs/gather_{stage}/gather.log",
        priority: GATHER_PRIORITY.get(stage, 0)
        conda:
            ENV
        params:
            kind=kind,
            stage=stage,
        shell:
            '"$VIDSTAGE_PYTHON" -m lib gather --kind {params.kind} --stage {params.stage}'
            " --out {output} {input} > {log} 2>&1"
