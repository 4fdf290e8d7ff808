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
        config_json=stage_config("folds"),
        matches=lambda wildcards, input: (
            f"--near-duplicates {input.near_duplicates}" if input.near_duplicates else ""
        ),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib folds --videos {input.videos} --config-json {params.config_json:q}'
        " {params.matches} --out {output} > {log} 2>&1"
