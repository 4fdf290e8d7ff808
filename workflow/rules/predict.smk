# Classify new videos: `snakemake results/predictions/{name}.csv` with predict.input (a
# folder or a manifest CSV) and predict.model. train_final refits the model on every fold
# with the settings the cross-validation used; not part of `all`. Two rules, as for train:
# feature models (model.joblib) and deep models (model.pt; the GPU profile's).


rule train_final:
    input:
        features="results/features.parquet",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        model="results/models/{model}/final/model.joblib",
        info="results/models/{model}/final/train_info.json",
    log:
        "logs/train/{model}/final.log",
    wildcard_constraints:
        model=model_pattern(FEATURE_MODELS),
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(60),
    params:
        out_dir=subpath(output.model, parent=True),
        model_params=lambda wc: as_json(config["train"]["params"].get(wc.model, {})),
        config_json=stage_config("train-final"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib train-final --features {input.features} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --model {wildcards.model}"
        " --params {params.model_params:q} --config-json {params.config_json:q} > {log} 2>&1"


# Every fold trains; the epoch is still chosen on the inner split. Checkpoints in
# results/.checkpoints/{model}/final survive a killed job, as for train_deep.
rule train_final_deep:
    input:
        scaled="results/scaled.csv",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        weights="results/models/{model}/final/model.pt",
        info="results/models/{model}/final/train_info.json",
        history="results/models/{model}/final/history.csv",
    log:
        "logs/train/{model}/final.log",
    wildcard_constraints:
        model=model_pattern(DEEP_MODELS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(240),
    params:
        out_dir=subpath(output.weights, parent=True),
        settings=lambda wc: as_json(config["train"]["deep"].get(wc.model, {})),
        checkpoint_dir=lambda wc: f"results/.checkpoints/{wc.model}/final",
        config_json=stage_config("train-final"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib train-final --scaled {input.scaled} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --model {wildcards.model}"
        " --params {params.settings:q} --checkpoint-dir {params.checkpoint_dir}"
        " --config-json {params.config_json:q} > {log} 2>&1"


rule predict:
    input:
        model=predict_model_dir,
    output:
        predictions="results/predictions/{name}.csv",
        windows="results/predictions/{name}.windows.csv",
    log:
        "logs/predict/{name}.log",
    benchmark:
        "results/benchmarks/predict/{name}.tsv"
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(120),
    params:
        source=config["predict"]["input"],
        model_dir=lambda wc, input: os.path.dirname(input.model),
        config_json=stage_config("predict"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib predict --input {params.source:q} --model-dir {params.model_dir}'
        " --out {output.predictions} --windows-out {output.windows}"
        " --config-json {params.config_json:q} > {log} 2>&1"
