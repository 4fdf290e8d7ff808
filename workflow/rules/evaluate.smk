# Stage 9: headline metrics on held-out original videos (one row per video) per (model,
# fold), fold mean ± std, a 95% group-bootstrap interval and the permutation p-value; the
# augmented held-out clips in a separate robustness table; the report's figures.


# One job per model in evaluate.permutation.models, every permutation inside it. Feature
# models (rule `permutation`) start as soon as the features exist, beside the deep models'
# training. A deep model (rule `permutation_deep`, on request) retrains every fold per
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
            folds="results/folds.csv",
        output:
            "results/models/{model}/permutation.csv",
        log:
            "logs/permutation/{model}.log",
        benchmark:
            "results/benchmarks/permutation/{model}.tsv"
        wildcard_constraints:
            model=model_pattern(models),
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
            checkpoint=checkpoint_option("permutation"),
            config_json=stage_config("permutation"),
        shell:
            '"$VIDSTAGE_PYTHON" -m lib permutation {params.data_option} {input.data}'
            " --clips {input.clips} --folds {input.folds} --out {output}"
            " --model {wildcards.model} --params {params.settings:q} {params.checkpoint}"
            " --config-json {params.config_json:q} > {log} 2>&1"


rule evaluate:
    input:
        predictions=prediction_files(),
        permutations=permutation_files(),
        clips="results/clips.csv",
        folds="results/folds.csv",
        videos="results/videos.csv",
    output:
        metrics="results/metrics.csv",
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="1. Headline (originals)",
            labels={"table": "summary: intervals and p-values"},
        ),
        robustness=report(
            "results/robustness.csv",
            caption="../report/robustness.rst",
            category="3. Robustness (augmented clips)",
            labels={"table": "per augmentation type"},
        ),
        platform=report(
            "results/platform_metrics.csv",
            caption="../report/platform.rst",
            category="1. Headline (originals)",
            labels={"table": "per platform"},
        ),
        confusion="results/confusion.csv",
        report="results/reports/evaluation.md",
        curves=report(
            "results/reports/curves.png",
            caption="../report/curves.rst",
            category="1. Headline (originals)",
            labels={"figure": "ROC and PR curves"},
        ),
        confusion_plot=report(
            "results/reports/confusion.png",
            caption="../report/confusion.rst",
            category="1. Headline (originals)",
            labels={"figure": "confusion matrices"},
        ),
        null=report(
            "results/reports/permutation_null.png",
            caption="../report/null.rst",
            category="2. Permutation test",
            labels={"figure": "null distributions"},
        ),
        training=report(
            "results/reports/training_curves.png",
            caption="../report/training.rst",
            category="4. Training curves",
            labels={"figure": "deep models"},
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
        " --videos {input.videos} --permutations {input.permutations}"
        " --robustness {output.robustness} --platform {output.platform}"
        " --confusion {output.confusion} --config-json {params.config_json:q}"
        " --config {params.config:q} {input.predictions} > {log} 2>&1"


rule data_quality:
    input:
        manifest="results/manifest.csv",
        downloads="results/download.csv",
        videos="results/videos.csv",
    output:
        table=report(
            "results/reports/data_quality.csv",
            caption="../report/data_quality.rst",
            category="5. Data quality",
            labels={"table": "per label and platform"},
        ),
        failures=report(
            "results/reports/failures.csv",
            caption="../report/data_quality.rst",
            category="5. Data quality",
            labels={"table": "failures by stage and reason"},
        ),
        plot=report(
            "results/reports/data_quality.png",
            caption="../report/data_quality.rst",
            category="5. Data quality",
            labels={"figure": "resolution, fps, duration, failures"},
        ),
    log:
        "logs/evaluate/data_quality.log",
    conda:
        ENV
    shell:
        '"$VIDSTAGE_PYTHON" -m lib data-quality --manifest {input.manifest}'
        " --downloads {input.downloads} --videos {input.videos} --table {output.table}"
        " --failures {output.failures} --plot {output.plot} > {log} 2>&1"
