# vidstage: labelled video URLs -> trained, honestly evaluated video classifiers.
# Table of contents; each stage lives in workflow/rules/<stage>.smk and calls `python -m lib`.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/embeddings.smk"
include: "workflow/rules/scale.smk"
include: "workflow/rules/scaled_features.smk"
include: "workflow/rules/signatures.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/near_duplicates.smk"
include: "workflow/rules/folds.smk"
include: "workflow/rules/protocols.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/completeness.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/test_corpus.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
