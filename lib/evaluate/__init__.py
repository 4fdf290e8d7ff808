"""Honest evaluation: ``folds`` (grouped, stratified folds), ``metrics`` (scores of held-out
originals, intervals, p-values), ``report`` (figures and the markdown report) and
``completeness`` (what each stage kept and lost, and why)."""
