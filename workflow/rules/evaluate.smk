# Stage 9: headline metrics on held-out original videos (one row per video) per (model,
# fold), fold mean ± std, a 95% group-bootstrap interval and the permutation p-value; the
# augmented held-out clips in a separate robustness table; the report's figures.


# One job per model in evaluate.permutation.models and protocol in
# evaluate.permutation.protocols (kfold; leave_one_group_out on its own folds table, holding
# out its used splits), every permutation inside it. Feature models (rule `permutation`)
# start as soon as the features exist, beside the deep models' training. A deep model (rule `permutation_deep`, on request) retrains every fold per
# permutation from the scaled clips with its train.deep settings, as train_deep does;
# finished (permutation, fold) fits and the running one's checkpoints survive a killed job
# (common.smk, checkpoint_option).
for kind, models in MODELS_BY_KIND.items():

    rule:
        name:
            kind_rule_name("permutation", kind)
        input:
            data=model_data,
            clips="results/clips.csv",
            folds=permutation_folds,
            splits=permutation_splits,
        output:
            "results/models/{model}/{protocol_dir}permutation.csv",
        log:
            "logs/permutation/{protocol_dir}{model}.log",
        benchmark:
            "results/benchmarks/permutation/{protocol_dir}{model}.tsv"
        wildcard_constraints:
            model=model_pattern(models),
            protocol_dir=PERMUTED_DIR_PATTERN,
        priority: 10 if kind == "feature" else 0
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=by_kind(feature=2000, deep=4000),
            runtime=by_kind(feature=120, deep=720),
        params:
            data_option=model_data_option,
            settings=model_settings,
            checkpoint=checkpoint_option("{protocol_dir}permutation"),
            splits=permutation_splits_option,
            config_json=stage_config("permutation"),
        shell:
            '"$VIDSTAGE_PYTHON" -m lib permutation {params.data_option} {input.data}'
            " --clips {input.clips} --folds {input.folds} --out {output}"
            " --model {wildcards.model} --params {params.settings:q} {params.checkpoint}"
            " {params.splits}"
            " --config-json {params.config_json:q} > {log} 2>&1"


rule evaluate:
    input:
        predictions=prediction_files(),
        protocol_predictions=protocol_prediction_files,
        splits=protocol_split_files(),
        permutations=permutation_files(),
        clips="results/clips.csv",
        folds="results/folds.csv",
        videos="results/videos.csv",
    output:
        metrics="results/metrics.csv",
        summary=in_report("results/summary.csv", "summary", table="summary: intervals and p-values"),
        robustness=in_report("results/robustness.csv", "robustness", table="per augmentation type"),
        platform=in_report("results/platform_metrics.csv", "platform", table="per platform"),
        confusion="results/confusion.csv",
        report="results/reports/evaluation.md",
        curves=in_report("results/reports/curves.png", "curves", figure="ROC and PR curves"),
        confusion_plot=in_report(
            "results/reports/confusion.png", "confusion", figure="confusion matrices"
        ),
        null=in_report("results/reports/permutation_null.png", "null", figure="null distributions"),
        training=in_report("results/reports/training_curves.png", "training", figure="deep models"),
        generalisation=in_report(
            "results/reports/generalisation.png",
            "generalisation",
            figure="protocols side by side",
        ),
    log:
        "logs/evaluate/evaluate.log",
    conda:
        ENV
    params:
        config_json=stage_config("evaluate"),
        config=as_json(config),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib evaluate --metrics {output.metrics} --summary {output.summary}'
        " --report-dir results/reports --clips {input.clips} --folds {input.folds}"
        " --videos {input.videos} --permutations {input.permutations} --splits {input.splits}"
        " --robustness {output.robustness} --platform {output.platform}"
        " --confusion {output.confusion} --config-json {params.config_json:q}"
        " --config {params.config:q} {input.predictions} {input.protocol_predictions}"
        " > {log} 2>&1"


# Self-supervised pretraining's reconstruction loss per epoch, every run the cross-validation
# used (pretrain.smk), in one table and one figure; only when a model has pretrained: ssl.
rule pretrain_report:
    input:
        pretrain_report_inputs(),
    output:
        table=in_report(
            "results/reports/pretrain_history.csv", "pretrain", table="pretraining per epoch"
        ),
        plot=in_report(
            "results/reports/pretrain_history.png", "pretrain", figure="VideoMAE pretraining"
        ),
    log:
        "logs/evaluate/pretrain_report.log",
    conda:
        ENV
    params:
        config_json=stage_config("pretrain-report"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib pretrain-report --out {output.table} --plot {output.plot}'
        " --config-json {params.config_json:q} {input} > {log} 2>&1"


rule data_quality:
    input:
        manifest="results/manifest.csv",
        downloads="results/download.csv",
        videos="results/videos.csv",
    output:
        table=in_report(
            "results/reports/data_quality.csv", "data_quality", table="per label and platform"
        ),
        failures=in_report(
            "results/reports/failures.csv", "data_quality", table="failures by stage and reason"
        ),
        plot=in_report(
            "results/reports/data_quality.png",
            "data_quality",
            figure="resolution, fps, duration, failures",
        ),
    log:
        "logs/evaluate/data_quality.log",
    conda:
        ENV
    shell:
        '"$VIDSTAGE_PYTHON" -m lib data-quality --manifest {input.manifest}'
        " --downloads {input.downloads} --videos {input.videos} --table {output.table}"
        " --failures {output.failures} --plot {output.plot} > {log} 2>&1"
