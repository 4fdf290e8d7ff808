"""Where videos come from: ``ingest`` (each corpus format into one manifest), ``download``
(yt-dlp, resumable) and ``demo`` (the generated demo corpus)."""
