# Stage 0: ingest. Any corpus format becomes results/manifest.csv, with a report of what
# was kept, merged and dropped. `snakemake results/manifest.csv` alone looks at a corpus.


rule demo_corpus:
    output:
        f"{config['dataset']['path']}/index.csv",
    log:
        "logs/demo_corpus/demo_corpus.log",
    conda:
        ENV
    params:
        out_dir=subpath(output[0], parent=True),
        n_groups=config["demo"]["n_groups"],
        seed=config["demo"]["seed"],
    shell:
        '"$VIDSTAGE_PYTHON" -m lib demo-corpus --out-dir {params.out_dir:q} --n-groups {params.n_groups}'
        " --seed {params.seed} > {log} 2>&1"


rule manifest:
    input:
        dataset_inputs,
    output:
        manifest="results/manifest.csv",
        report="results/reports/ingest.md",
    log:
        "logs/manifest/manifest.log",
    conda:
        ENV
    params:
        format=config["dataset"]["format"],
        path=config["dataset"]["path"],
        label_map=as_json(config["dataset"].get("label_map")),
        file_urls="--allow-file-urls" if config["dataset"]["allow_file_urls"] else "",
    shell:
        '"$VIDSTAGE_PYTHON" -m lib manifest --format {params.format} --path {params.path:q}'
        " --label-map {params.label_map:q} {params.file_urls} --out {output.manifest}"
        " --report {output.report}"
        " > {log} 2>&1"
