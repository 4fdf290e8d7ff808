# Classify new videos: `snakemake results/predictions/{name}.csv` with predict.input (a
# folder or a manifest CSV) and predict.model. train_final refits the model on every fold
# with the settings the cross-validation used; not part of `all`. A rule per kind of model,
# as for train: `train_final` (model.joblib) and `train_final_deep` (model.pt and export/, the
# GPU profile's), whose every fold trains while the epoch is still chosen on the inner split,
# and whose checkpoints survive a killed job.


for kind, models in MODELS_BY_KIND.items():

    rule:
        name:
            kind_rule_name("train_final", kind)
        input:
            data=model_data,
            clips="results/clips.csv",
            folds="results/folds.csv",
            pretrained=pretrained_input,
        output:
            **model_files(kind, "results/models/{model}/final"),
            **export_files(kind, "results/models/{model}/final"),
            info="results/models/{model}/final/train_info.json",
        log:
            "logs/train/{model}/final.log",
        wildcard_constraints:
            model=model_pattern(models),
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=by_kind(feature=2000, deep=4000),
            runtime=by_kind(feature=60, deep=240),
        params:
            out_dir=subpath(output.info, parent=True),
            data_option=model_data_option,
            settings=model_settings,
            checkpoint=checkpoint_option("final"),
            config_json=stage_config("train-final"),
        shell:
            '"$VIDSTAGE_PYTHON" -m lib train-final {params.data_option} {input.data}'
            " --clips {input.clips} --folds {input.folds} --out-dir {params.out_dir}"
            " --model {wildcards.model} --params {params.settings:q} {params.checkpoint}"
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
