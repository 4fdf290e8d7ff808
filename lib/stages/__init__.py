"""The stages of the workflow, one module per stage (or per closely related group), each
holding the function its ``python -m lib <command>`` calls and the glue between that command
and the library (tables read and written, config keys renamed to the library's keywords).

- :mod:`lib.stages.commands`: the command table (arguments and config sections of every
  command, what the Snakefile and :mod:`lib.cli` read) and
  :func:`~lib.stages.commands.stage_function`, the function each command calls.
- :mod:`lib.stages.sharded`: the skeleton the sharded stages share (one shard of a table,
  one unit at a time, resumably: :mod:`lib.shards`).
- Sharded stages: :mod:`~lib.stages.download`, :mod:`~lib.stages.validate`,
  :mod:`~lib.stages.augment`, :mod:`~lib.stages.features` (features, scaled-features and
  merge-features), :mod:`~lib.stages.scale`, :mod:`~lib.stages.signatures`.
- One job each: :mod:`~lib.stages.corpus` (demo-corpus, manifest),
  :mod:`~lib.stages.near_duplicates`, :mod:`~lib.stages.folds`, :mod:`~lib.stages.gather`
  (gather, completeness), :mod:`~lib.stages.train` (train, train-final),
  :mod:`~lib.stages.permutation`, :mod:`~lib.stages.evaluate` (evaluate, data-quality);
  predict calls :func:`lib.predict.predict_videos` itself (no glue needed).

Every stage function takes its config keys as required keywords: their defaults live in
``workflow/schemas/config.schema.yaml`` only.
"""
