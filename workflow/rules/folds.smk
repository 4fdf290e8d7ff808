# Stage 7: k folds over valid videos, grouped by duplicate group (annotated, joined with the
# leak audit's content matches by folds.group_by; a group never straddles
# folds) and stratified by label. Clips follow their video.


rule folds:
    input:
        videos="results/videos.csv",
        # folds.group_by content/both: groups joined by the leak audit's matches
        near_duplicates=near_duplicates_input(),
    output:
        "results/folds.csv",
    log:
        "logs/folds/folds.log",
    conda:
        ENV
    params:
        k=config["folds"]["k"],
        seed=config["seed"],
        group_by=config["folds"]["group_by"],
        matches=lambda wildcards, input: (
            f"--near-duplicates {input.near_duplicates}"
            if input.near_duplicates
            else ""
        ),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib folds --videos {input.videos} --k {params.k} --seed {params.seed}'
        " --group-by {params.group_by} {params.matches} --out {output} > {log} 2>&1"
