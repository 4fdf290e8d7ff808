# Stage 5: every clip letterboxed (or autoencoded) onto a fixed square canvas, streamed in
# chunks of frames, written to data/scaled/.


rule scale:
    input:
        "results/clips.csv",
    output:
        "results/shards/scale/{scatteritem}.csv",
    log:
        "logs/scale/{scatteritem}.log",
    benchmark:
        "results/benchmarks/scale/{scatteritem}.tsv"
    # the longest chain (augment -> scale -> scaled_features -> train) goes first; the leak
    # audit and handcrafted features fill the other cores (docs/BENCHMARKS.md, "Demo run")
    priority: 10
    conda:
        ENV
    resources:
        # Sized from the letterbox's measured peak memory at 1080p and work per shard (FVC at
        # 64 shards): docs/BENCHMARKS.md, section "Cost per stage". The memory request leaves
        # room for the autoencoder on the CPU, which is not measured there.
        mem_mb=mem_mb(2000),
        runtime=runtime(180),
    params:
        config_json=stage_config("scale"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib scale --clips {input} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
