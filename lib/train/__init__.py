"""Training: one (model, fold) job at a time, every family behind one registry.

``feature_models`` holds the scikit-learn models on the handcrafted and scaled features.
"""
