# The test corpus (config test_corpus; docs/EVALUATION.md, "The test corpus"): a second
# labelled corpus, never trained or selected on. It takes the training corpus's way through
# the same commands, one job each, under results/test_corpus/ (ingest, download, validate,
# signatures), each listed model's final model (train_final) classifies it as predict does,
# the leak audit matches it against the training corpus, and test_corpus_score scores it
# (results/test_corpus/summary.csv, results/reports/test_corpus.md). Off unless
# test_corpus.path is set (common.smk: TEST_MODELS, test_corpus_files).
rule test_corpus_manifest:
    input:
        test_corpus_inputs,
    output:
        manifest=f"{TEST_DIR}/manifest.csv",
        report=f"{TEST_DIR}/ingest.md",
    log:
        "logs/test_corpus/manifest.log",
    conda:
        ENV
    params:
        config_json=stage_config("test-corpus-manifest"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib test-corpus-manifest --config-json {params.config_json:q}'
        " --out {output.manifest} --report {output.report} > {log} 2>&1"


rule test_corpus_download:
    input:
        f"{TEST_DIR}/manifest.csv",
    output:
        f"{TEST_DIR}/download.csv",
    log:
        "logs/test_corpus/download.log",
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(240),
    params:
        config_json=stage_config("download"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib download --manifest {input} --shard 1-of-1'
        " --videos-dir data/test_corpus/videos --progress-dir results/.progress/test_corpus"
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"


rule test_corpus_validate:
    input:
        f"{TEST_DIR}/download.csv",
    output:
        f"{TEST_DIR}/videos.csv",
    log:
        "logs/test_corpus/validate.log",
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(120),
    params:
        config_json=stage_config("validate"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib validate --downloads {input} --shard 1-of-1'
        " --progress-dir results/.progress/test_corpus"
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"


rule test_corpus_signatures:
    input:
        f"{TEST_DIR}/videos.csv",
    output:
        f"{TEST_DIR}/signatures.csv",
    log:
        "logs/test_corpus/signatures.log",
    conda:
        ENV
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime(120),
    params:
        config_json=stage_config("signatures"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib signatures --videos {input} --shard 1-of-1'
        " --progress-dir results/.progress/test_corpus"
        " --config-json {params.config_json:q} --out {output} > {log} 2>&1"


# The leak audit across corpora: test videos that copy a training video, and the test
# corpus's duplicate groups (annotated, joined through its own matches: folds.group_by).
rule test_corpus_audit:
    input:
        videos="results/videos.csv",
        signatures="results/signatures.csv",
        test_videos=f"{TEST_DIR}/videos.csv",
        test_signatures=f"{TEST_DIR}/signatures.csv",
    output:
        pairs=f"{TEST_DIR}/cross_duplicates.csv",
        groups=f"{TEST_DIR}/groups.csv",
    log:
        "logs/test_corpus/audit.log",
    conda:
        ENV
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(60),
    params:
        config_json=stage_config("test-corpus-audit"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib test-corpus-audit --videos {input.videos}'
        " --signatures {input.signatures} --test-videos {input.test_videos}"
        " --test-signatures {input.test_signatures} --out {output.pairs}"
        " --groups-out {output.groups} --config-json {params.config_json:q} > {log} 2>&1"


# predict's own command, on the test corpus's valid videos, with each model's final fit.
rule test_corpus_predict:
    input:
        info="results/models/{model}/final/train_info.json",
        videos=f"{TEST_DIR}/videos.csv",
    output:
        predictions=f"{TEST_DIR}/predictions/{{model}}.csv",
        windows=f"{TEST_DIR}/predictions/{{model}}.windows.csv",
    log:
        "logs/test_corpus/predict_{model}.log",
    wildcard_constraints:
        model=model_pattern(TEST_MODELS),
    conda:
        ENV
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime(120),
    params:
        model_dir=subpath(input.info, parent=True),
        config_json=stage_config("predict"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib predict --input {input.videos} --model-dir {params.model_dir}'
        " --out {output.predictions} --windows-out {output.windows}"
        " --config-json {params.config_json:q} > {log} 2>&1"


rule test_corpus_score:
    input:
        groups=f"{TEST_DIR}/groups.csv",
        pairs=f"{TEST_DIR}/cross_duplicates.csv",
        predictions=expand(f"{TEST_DIR}/predictions/{{model}}.csv", model=TEST_MODELS),
        windows=expand(f"{TEST_DIR}/predictions/{{model}}.windows.csv", model=TEST_MODELS),
        summary="results/summary.csv",
    output:
        scores=in_report(
            f"{TEST_DIR}/summary.csv", "test_corpus", table="test corpus: scores, intervals"
        ),
        report="results/reports/test_corpus.md",
        plot=in_report(
            "results/reports/test_corpus_generalisation.png",
            "test_corpus",
            figure="protocols and test corpus",
        ),
    log:
        "logs/test_corpus/score.log",
    conda:
        ENV
    params:
        config_json=stage_config("test-corpus-score"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib test-corpus-score --videos {input.groups}'
        " --cross {input.pairs} --out {output.scores} --report {output.report}"
        " --summary {input.summary} --plot {output.plot} --windows {input.windows}"
        " --config-json {params.config_json:q} {input.predictions} > {log} 2>&1"


if config["local_download"]:

    localrules:
        test_corpus_download,
