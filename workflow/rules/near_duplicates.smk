# Leak audit, part 2: every pair of near-duplicate videos by content (an LSH index over the
# frame hashes, never all n^2 pairs), judged against the annotated groups and against folds
# made from them alone (lib/audit/near_duplicates.py). The folds stage joins its groups with these
# pairs (folds.group_by).


rule near_duplicates:
    input:
        videos="results/videos.csv",
        signatures="results/signatures.csv",
    output:
        pairs="results/near_duplicates.csv",
        report="results/reports/leaks.md",
    log:
        "logs/near_duplicates/near_duplicates.log",
    benchmark:
        "results/benchmarks/near_duplicates/near_duplicates.tsv"
    conda:
        ENV
    resources:
        # the signatures table is read whole: measured in docs/BENCHMARKS.md, section "Scale
        # rehearsal" (the audit is the first job whose memory grows past a fixed request)
        mem_mb=mem_mb_with_input(2000, 1),
        runtime=runtime(60),
    params:
        config_json=stage_config("near-duplicates"),
    shell:
        '"$VIDSTAGE_PYTHON" -m lib near-duplicates --videos {input.videos} --signatures {input.signatures}'
        " --config-json {params.config_json:q} --out {output.pairs} --report {output.report} > {log} 2>&1"
