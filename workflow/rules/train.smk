# Stage 8: one job per (model, fold): fit on the other folds only, predict the held-out one.


wildcard_constraints:
    model="|".join(MODELS),
    fold=r"\d+",


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
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(60),
    params:
        out_dir=subpath(output.predictions, parent=True),
        model_params=lambda wc: as_json(config["train"]["params"].get(wc.model, {})),
        positive=config["train"]["positive_label"],
        seed=config["seed"],
    shell:
        '"$VIDSTAGE_PYTHON" -m lib train --features {input.features} --clips {input.clips}'
        " --folds {input.folds} --out-dir {params.out_dir} --model {wildcards.model}"
        " --fold {wildcards.fold} --params {params.model_params:q}"
        " --positive-label {params.positive:q} --seed {params.seed} > {log} 2>&1"
