# Stage 7b: self-supervised VideoMAE pretraining (lib/train/pretrain.py), one job per run:
# fold-<k> on the videos outside fold k, final (for train_final) on every fold's, or, with
# pretrain.scope corpus, one run on every valid video (transductive). No label is read.
# Jobs exist only when a deep model in train.models has pretrained: ssl; its train jobs
# start from results/pretrain/<run> (common.smk, pretrained_input and model_settings).
# Checkpoints outside the outputs survive a killed job, as train_deep's do; profiles/slurm-gpu
# gives the rule a GPU.


rule pretrain:
    input:
        scaled="results/scaled.csv",
        clips="results/clips.csv",
        folds=split_folds_table,
    output:
        **pretrain_files("results/pretrain/{run}"),
    log:
        "logs/pretrain/{run}.log",
    benchmark:
        "results/benchmarks/pretrain/{run}.tsv"
    wildcard_constraints:
        run=PRETRAIN_RUN_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(240),
    params:
        out_dir=subpath(output.info, parent=True),
        fold=lambda wildcards: run_fold(wildcards.run),
        settings=pretrain_settings(),
        checkpoint=lambda wildcards: f"results/.checkpoints/pretrain/{wildcards.run}",
        config_json=stage_config("pretrain"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib pretrain --scaled {input.scaled} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --fold {params.fold}"
        " --params {params.settings:q} --checkpoint-dir {params.checkpoint}"
        " --config-json {params.config_json:q} > {log} 2>&1"
