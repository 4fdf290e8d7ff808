"""Training: one (model, fold) job at a time, every family behind one registry.

Feature (scikit-learn) models on the handcrafted and scaled features: ``feature_models``.
Deep models on the scaled clips, from the outside in:

- ``settings``: the deep families' names and ``DeepSettings``, both read from the schema
  (no torch: the Snakefile imports it); ``check``: the ``train`` section's start-up check;
- ``models``: the families, ``@register_model`` and ``create_model(name, settings)``;
- ``loop``: ``train_deep_fold``, one fold's training from data to predictions, made of
  ``data`` (clip table, the fold's inner split, streaming frame dataset), ``runtime``
  (device, precision, micro-batch), ``epoch`` (optimiser, one epoch, the validation pass)
  and ``checkpoint`` (atomic, resumable checkpoints);
- ``predictions``: the predictions contract both kinds write; ``permutation``: the
  permutation test of either kind.
"""
