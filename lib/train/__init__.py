"""Training: one (model, fold) job at a time, every family behind one registry.

``feature_models`` holds the scikit-learn models on the handcrafted and scaled features.
The deep models on the scaled clips: ``registry`` (``create_model(name, settings)``, the
settings and their start-up check), ``models`` (the families, all through transformers'
``from_pretrained``), ``data`` (clip table, inner validation split, streaming frame dataset),
``loop`` (``train_deep_fold``: the training loop of one fold) and ``checkpoint`` (atomic,
resumable checkpoints).
"""
