# Stage 9: headline metrics on held-out original videos (one row per video) per (model,
# fold), fold mean ± std, a 95% group-bootstrap interval and the permutation p-value; the
# augmented held-out clips in a separate robustness table; the report's figures.


rule permutation:
    input:
        features="results/features.parquet",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        "results/models/{model}/permutation.csv",
    log:
        "logs/permutation/{model}.log",
    benchmark:
        "results/benchmarks/permutation/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(FEATURE_MODELS),
    # started as soon as the features exist, beside the deep models' training
    priority: 10
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(120),
    params:
        model_params=lambda wc: as_json(config["train"]["params"].get(wc.model, {})),
        config_json=stage_config("permutation"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib permutation --features {input.features} --clips {input.clips}'
        " --folds {input.folds} --out {output} --model {wildcards.model}"
        " --params {params.model_params:q} --config-json {params.config_json:q} > {log} 2>&1"


# A deep model on request (evaluate.permutation.models): every permutation retrains every
# fold from the scaled clips with the model's train.deep settings, as rule train_deep does.
# Finished (permutation, fold) fits and the running one's checkpoints live in
# results/.checkpoints/, which Snakemake does not delete: a killed job resumes.
rule permutation_deep:
    input:
        scaled="results/scaled.csv",
        clips="results/clips.csv",
        folds="results/folds.csv",
    output:
        "results/models/{model}/permutation.csv",
    log:
        "logs/permutation/{model}.log",
    benchmark:
        "results/benchmarks/permutation/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(DEEP_MODELS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(720),
    params:
        settings=lambda wc: as_json(config["train"]["deep"].get(wc.model, {})),
        checkpoint_dir=lambda wc: f"results/.checkpoints/{wc.model}/permutation",
        config_json=stage_config("permutation"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib permutation --scaled {input.scaled} --clips {input.clips}'
        " --folds {input.folds} --out {output} --model {wildcards.model}"
        " --params {params.settings:q} --checkpoint-dir {params.checkpoint_dir}"
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
