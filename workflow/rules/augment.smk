# Stage 3: augmented clips of every valid video (data/clips/), plus the untouched original
# (aug_idx -1). Parameters are seeded by the video id and the global seed only.


rule augment:
    input:
        "results/videos.csv",
    output:
        "results/shards/augment/{scatteritem}.csv",
    log:
        "logs/augment/{scatteritem}.log",
    benchmark:
        "results/benchmarks/augment/{scatteritem}.tsv"
    # the longest chain (augment -> scale -> scaled_features -> train) goes first; the leak
    # audit and handcrafted features fill the other cores (docs/BENCHMARKS.md, "Demo run")
    priority: 10
    conda:
        ENV
    resources:
        # Sized from the measured peak memory at 1080p (one encoder open at a time) and work
        # per shard for the FVC at 64 shards: docs/BENCHMARKS.md, section "Cost per stage";
        # docs/CLUSTER.md.
        mem_mb=mem_mb(1000),
        runtime=runtime(480),
    params:
        config_json=stage_config("augment"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib augment --videos {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
