# Stage 8: one job per (model, fold): fit on the other folds only, predict the held-out one.
# Feature models (rule `train`) read the feature table; deep models (rule `train_deep`) read
# the scaled clips and keep checkpoints (common.smk, checkpoint_option). Both write the same
# predictions.csv contract, so `evaluate` sees one family. One definition, a rule per kind
# of model: profiles/slurm-gpu gives GPUs to the deep jobs only (common.smk, MODELS_BY_KIND).
# A deep model with pretrained: ssl starts from its fold's pretraining (pretrain.smk).
# The same rules run the other evaluation protocols' splits (protocols.smk): a split is
# fold-<k> of results/folds.csv or <protocol>/fold-<k> of that protocol's folds table.


for kind, models in MODELS_BY_KIND.items():

    rule:
        name:
            kind_rule_name("train", kind)
        input:
            data=model_data,
            clips="results/clips.csv",
            folds=split_folds_table,
            pretrained=pretrained_input,
        output:
            **model_files(kind, "results/models/{model}/{split}"),
            predictions="results/models/{model}/{split}/predictions.csv",
            info="results/models/{model}/{split}/train_info.json",
        log:
            "logs/train/{model}/{split}.log",
        benchmark:
            "results/benchmarks/train/{model}/{split}.tsv"
        wildcard_constraints:
            model=model_pattern(models),
            split=SPLIT_PATTERN,
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=by_kind(feature=2000, deep=4000),
            runtime=by_kind(feature=60, deep=240),
        params:
            out_dir=subpath(output.predictions, parent=True),
            data_option=model_data_option,
            settings=model_settings,
            fold=lambda wildcards: run_fold(wildcards.split),
            checkpoint=checkpoint_option("{split}"),
            config_json=stage_config("train"),
        shell:
            '"$VIDSTAGE_PYTHON" -m lib train {params.data_option} {input.data}'
            " --clips {input.clips} --folds {input.folds} --out-dir {params.out_dir}"
            " --model {wildcards.model} --fold {params.fold} --params {params.settings:q}"
            " {params.checkpoint} --config-json {params.config_json:q} > {log} 2>&1"
