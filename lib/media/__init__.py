"""What is done to frames: ``augment`` (augmented clips), ``features`` and ``feature_kernels``
(handcrafted features) and ``scale`` (frames onto the square canvas the models read)."""
