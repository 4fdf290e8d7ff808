# Stage 4: handcrafted features of every clip over sampled frames (noise residual, 8x8 DCT,
# sharpness, gradients, blockiness, codec figures). Also the merge of both feature stages.


rule features:
    input:
        clip_reader_input,
    output:
        "results/shards/features/{scatteritem}.csv",
    log:
        "logs/features/{scatteritem}.log",
    benchmark:
        "results/benchmarks/features/{scatteritem}.tsv"
    # under the disk budget a shard's readers go before later shards are augmented
    priority: 20 if REMOVE_CLIPS else 0
    conda:
        ENV
    resources:
        # Sized from the measured peak memory at 1080p and work per shard (FVC at 64 shards):
        # docs/BENCHMARKS.md, section "Cost per stage".
        mem_mb=mem_mb(1000),
        runtime=runtime(60),
    params:
        config_json=stage_config("features"),
        shard=clip_reader_shard,
    shell:
        '"$VIDSTAGE_PYTHON" -m lib features --clips {input} {params.shard}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"


rule merge_features:
    input:
        handcrafted="results/features_handcrafted.csv",
        scaled="results/features_scaled.csv",
    output:
        "results/features.parquet",
    log:
        "logs/merge_features/merge.log",
    priority: 10
    conda:
        ENV
    shell:
        '"$VIDSTAGE_PYTHON" -m lib merge-features --handcrafted {input.handcrafted}'
        " --scaled {input.scaled} --out {output} > {log} 2>&1"
