# Leak audit, part 1: a perceptual-hash signature of every valid video, from frames sampled
# across it (lib/audit/signatures.py); sharded like validate/features.


rule signatures:
    input:
        "results/videos.csv",
    output:
        "results/shards/signatures/{scatteritem}.csv",
    log:
        "logs/signatures/{scatteritem}.log",
    benchmark:
        "results/benchmarks/signatures/{scatteritem}.tsv"
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(60),
    params:
        config_json=stage_config("signatures"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib signatures --videos {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
