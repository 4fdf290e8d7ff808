# Stage 8: one job per (model, fold): fit on the other folds only, predict the held-out one.
# Feature models (`train`) read the feature table; deep models (`train_deep`) read the
# scaled clips. Both write the same predictions.csv contract, so `evaluate` sees one family.
# Two rules rather than one so that profiles/slurm-gpu can give GPUs to the deep jobs only.


rule train:
    input:
        features="results/features.parquet",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        predictions="results/models/{model}/fold-{fold}/predictions.csv",
        model="results/models/{model}/fold-{fold}/model.joblib",
        info="results/models/{model}/fold-{fold}/train_info.json",
    log:
        "logs/train/{model}/fold-{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}/fold-{fold}.tsv"
    wildcard_constraints:
        model=model_pattern(FEATURE_MODELS),
        fold=r"\d+",
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(60),
    params:
        out_dir=subpath(output.predictions, parent=True),
        model_params=lambda wc: as_json(config["train"]["params"].get(wc.model, {})),
        config_json=stage_config("train"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib train --features {input.features} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --model {wildcards.model}"
        " --fold {wildcards.fold} --params {params.model_params:q}"
        " --config-json {params.config_json:q} > {log} 2>&1"


# Checkpoints live in results/.checkpoints/, which Snakemake does not know about: a failed
# or killed job's rerun resumes from its last finished epoch (lib/train/checkpoint.py).
rule train_deep:
    input:
        scaled="results/scaled.csv",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        predictions="results/models/{model}/fold-{fold}/predictions.csv",
        info="results/models/{model}/fold-{fold}/train_info.json",
        history="results/models/{model}/fold-{fold}/history.csv",
        weights="results/models/{model}/fold-{fold}/model.pt",
    log:
        "logs/train/{model}/fold-{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}/fold-{fold}.tsv"
    wildcard_constraints:
        model=model_pattern(DEEP_MODELS),
        fold=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(240),
    params:
        out_dir=subpath(output.predictions, parent=True),
        settings=lambda wc: as_json(config["train"]["deep"].get(wc.model, {})),
        checkpoint_dir=lambda wc: f"results/.checkpoints/{wc.model}/fold-{wc.fold}",
        config_json=stage_config("train"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib train --scaled {input.scaled} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --model {wildcards.model}"
        " --fold {wildcards.fold} --params {params.settings:q}"
        " --checkpoint-dir {params.checkpoint_dir} --config-json {params.config_json:q}"
        " > {log} 2>&1"
