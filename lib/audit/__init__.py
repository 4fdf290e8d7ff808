"""The content leak audit: ``signatures`` (perceptual hashes of sampled frames) and
``near_duplicates`` (matching them, and the groups the folds keep together)."""
