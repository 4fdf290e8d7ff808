# Report: per stage, expected vs present rows, originals lost, videos short of
# augmentations, failures by reason (`python -m lib completeness` works after any stage).


rule completeness:
    input:
        "results/manifest.csv",
        "results/download.csv",
        "results/videos.csv",
        "results/clips.csv",
        "results/scaled.csv",
        "results/features_handcrafted.csv",
        "results/features_scaled.csv",
    output:
        md="results/reports/completeness.md",
        csv="results/reports/completeness.csv",
    log:
        "logs/completeness/completeness.log",
    conda:
        ENV
    params:
        config_json=stage_config("completeness"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib completeness --md {output.md} --csv {output.csv}'
        " --config-json {params.config_json:q} > {log} 2>&1"
