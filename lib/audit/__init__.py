"""The content leak audit: ``signatures`` (perceptual hashes of sampled frames),
``near_duplicates`` (matching them), ``groups`` (the groups the folds keep together) and
``leaks`` (the pairs judged against annotations and folds, and the report)."""
