# Stage 2: validate every download with PyAV (frames, fps, size, codec, a decode of the
# first, middle and last frame); broken files get valid=false and a reason, never a crash.


rule validate:
    input:
        "results/download.csv",
    output:
        "results/shards/validate/{scatteritem}.csv",
    log:
        "logs/validate/{scatteritem}.log",
    benchmark:
        "results/benchmarks/validate/{scatteritem}.tsv"
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(60),
    params:
        config_json=stage_config("validate"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib validate --downloads {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
