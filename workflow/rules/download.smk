# Stage 1: download with yt-dlp into data/videos/ (local corpus files are linked or copied),
# sharded over the manifest. Files already on disk are not fetched again, unless an earlier
# validate found them broken; each manifest row gets a ledger row (status, reason, error).


rule download:
    input:
        "results/manifest.csv",
    output:
        "results/shards/download/{scatteritem}.csv",
    log:
        "logs/download/{scatteritem}.log",
    benchmark:
        "results/benchmarks/download/{scatteritem}.tsv"
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(120),
    params:
        config_json=stage_config("download"),
    # Earlier runs' tables, read when present (download.retry_failed chooses which matters):
    # not inputs, as they are made by this stage and a later one.
    shell:
        '"$VIDSTAGE_PYTHON" -m lib download --manifest {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --previous results/download.csv"
        " --recheck results/videos.csv --out {output} > {log} 2>&1"
