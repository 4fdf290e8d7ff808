# Stage 7: k folds over valid videos, grouped by duplicate group (a group never straddles
# folds) and stratified by label. Clips follow their video.


rule folds:
    input:
        "results/videos.csv",
    output:
        "results/folds.csv",
    log:
        "logs/folds/folds.log",
    conda:
        ENV
    params:
        k=config["folds"]["k"],
        seed=config["seed"],
    shell:
        '"$VIDSTAGE_PYTHON" -m lib folds --videos {input} --k {params.k} --seed {params.seed}'
        " --out {output} > {log} 2>&1"
