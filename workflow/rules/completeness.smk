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
        n_aug=config["augment"]["n_augmentations"],
    shell:
        '"$VIDSTAGE_PYTHON" -m lib completeness --md {output.md} --csv {output.csv}'
        " --n-augmentations {params.n_aug} > {log} 2>&1"
