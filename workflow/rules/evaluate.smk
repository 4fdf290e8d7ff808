# Stage 9: metrics per (model, fold) at clip and video level, mean +- std over folds, and a
# report with ROC curves and the resolved config next to the results.


rule evaluate:
    input:
        prediction_files(),
    output:
        metrics="results/metrics.csv",
        summary="results/summary.csv",
        report="results/reports/evaluation.md",
        roc=report(
            "results/reports/roc.png",
            caption="../report/roc.rst",
            category="Evaluation",
        ),
    log:
        "logs/evaluate/evaluate.log",
    conda:
        ENV
    params:
        positive=config["train"]["positive_label"],
        config=as_json(config),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib evaluate --metrics {output.metrics} --summary {output.summary}'
        " --report-dir results/reports --positive-label {params.positive:q}"
        " --config {params.config:q} {input} > {log} 2>&1"
