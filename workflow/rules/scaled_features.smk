# Stage 6: features of the scaled clips (edge density, texture, colour spread, blockiness,
# up/down-scale flags).


rule scaled_features:
    input:
        "results/scaled.csv",
    output:
        "results/shards/scaled_features/{scatteritem}.csv",
    log:
        "logs/scaled_features/{scatteritem}.log",
    benchmark:
        "results/benchmarks/scaled_features/{scatteritem}.tsv"
    # ahead of the deep models' training: the permutation tests, the longest jobs, wait for
    # these features
    priority: 10
    conda:
        ENV
    resources:
        # Sized from the measured peak memory and work per shard (FVC at 64 shards):
        # docs/BENCHMARKS.md, section "Cost per stage".
        mem_mb=mem_mb(1000),
        runtime=runtime(60),
    params:
        config_json=stage_config("scaled-features"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib scaled-features --scaled {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
