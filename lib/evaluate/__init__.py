"""Honest evaluation: ``folds`` (grouped, stratified folds), ``metrics`` (scores of held-out
originals, intervals, p-values), ``evaluation`` (the evaluate stage's driver: every table and
figure from the predictions), ``report`` (figures and the markdown report) and
``completeness`` (what each stage kept and lost, and why)."""
