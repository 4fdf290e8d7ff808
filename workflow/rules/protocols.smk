# Stage 7c: evaluation protocols beside k-fold (evaluate.protocols; lib/evaluate/protocols.py).
# leave_one_group_out: one split per value of evaluate.leave_one_group_out.column (platform)
# with enough videos of each class, written as a folds table (split k = fold k) that the
# train rules run as they run k-fold's folds (train.smk). A checkpoint: the number of splits
# is the data's, so evaluate's inputs are listed once the table exists (common.smk,
# protocol_prediction_files).


checkpoint protocol_folds:
    input:
        folds="results/folds.csv",
        videos="results/videos.csv",
    output:
        folds="results/protocols/{protocol}/folds.csv",
        splits="results/protocols/{protocol}/splits.csv",
    log:
        "logs/protocols/{protocol}.log",
    wildcard_constraints:
        protocol=model_pattern(PROTOCOL_DIRS),
    conda:
        ENV
    params:
        config_json=stage_config("protocol-folds"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib protocol-folds --folds {input.folds} --videos {input.videos}'
        " --out {output.folds} --splits {output.splits}"
        " --config-json {params.config_json:q} > {log} 2>&1"
