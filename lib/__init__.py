"""vidstage: a staged, sharded, resumable pipeline from labelled video URLs to evaluated classifiers.

Every stage is a plain function in this package; the Snakemake rules in ``workflow/rules``
only call them through ``python -m lib <stage>``. Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
