# Frozen image-encoder embeddings of every clip (lib/stages/embeddings.py): sampled frames
# through a CLIP, SigLIP or DINOv2 vision model, mean-pooled per clip, gathered into the
# table the probe, knn and probe_hc models read. With embeddings.tiny set, a rule builds the
# random-init tiny encoder first (the demo: nothing is downloaded; common.smk, encoder_files).


if config["embeddings"]["tiny"]:

    rule tiny_encoder:
        output:
            encoder_files(),
        log:
            "logs/tiny_encoder/build.log",
        conda:
            ENV
        params:
            out_dir=subpath(output[0], parent=True),
            config_json=stage_config("tiny-encoder"),
        shell:
            '"$VIDSTAGE_PYTHON" -m lib tiny-encoder --out-dir {params.out_dir:q}'
            " --config-json {params.config_json:q} > {log} 2>&1"


rule embeddings:
    input:
        clips="results/clips.csv",
        encoder=encoder_files(),
    output:
        "results/shards/embeddings/{scatteritem}.parquet",
    log:
        "logs/embeddings/{scatteritem}.log",
    benchmark:
        "results/benchmarks/embeddings/{scatteritem}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # A base-size encoder's weights and one batch of frames; what the stage costs per
        # frame: docs/BENCHMARKS.md, section "Embeddings".
        mem_mb=mem_mb(4000),
        runtime=runtime(240),
    params:
        config_json=stage_config("embeddings"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib embeddings --clips {input.clips} --shard {wildcards.scatteritem}'
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"


rule gather_embeddings:
    input:
        gather.shards("results/shards/embeddings/{scatteritem}.parquet"),
    output:
        "results/embeddings.parquet",
    log:
        "logs/gather_embeddings/gather.log",
    conda:
        ENV
    shell:
        '"$VIDSTAGE_PYTHON" -m lib gather --kind embeddings --stage embeddings'
        " --out {output} {input} > {log} 2>&1"
