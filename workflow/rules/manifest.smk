# Stage 0: ingest. Any corpus format becomes results/manifest.csv, with a report of what
# was kept, merged and dropped. `snakemake results/manifest.csv` alone looks at a corpus.


rule demo_corpus:
    output:
        f"{config['dataset']['path']}/index.csv",
    log:
        "logs/demo_corpus/demo_corpus.log",
    conda:
        ENV
    # the groups are independent: a second process shortens the wait for the demo's corpus
    threads: 2
    params:
        out_dir=subpath(output[0], parent=True),
        config_json=stage_config("demo-corpus"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib demo-corpus --out-dir {params.out_dir:q} --jobs {threads}'
        " --config-json {params.config_json:q} > {log} 2>&1"


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
        config_json=stage_config("manifest"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib manifest --config-json {params.config_json:q}'
        " --out {output.manifest} --report {output.report} > {log} 2>&1"
