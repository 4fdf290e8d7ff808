# Stage 5: every clip letterboxed (or autoencoded) onto a fixed square canvas, streamed in
# chunks of frames, written to data/scaled/.


rule scale:
    input:
        clips=clip_reader_input,
        # under the disk budget (scale.remove_clips) scale removes the clips it read, after
        # every other reader of them
        other_readers=clip_readers_before_removal,
    output:
        "results/shards/scale/{scatteritem}.csv",
    log:
        "logs/scale/{scatteritem}.log",
    benchmark:
        "results/benchmarks/scale/{scatteritem}.tsv"
    # the longest chain (augment -> scale -> scaled_features -> train) goes first; the leak
    # audit and handcrafted features fill the other cores (docs/BENCHMARKS.md, "Demo run");
    # under the disk budget a shard's readers go before later shards are augmented
    priority: 20 if REMOVE_CLIPS else 10
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
        shard=clip_reader_shard,
    shell:
        '"$VIDSTAGE_PYTHON" -m lib scale --clips {input.clips} {params.shard}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"
