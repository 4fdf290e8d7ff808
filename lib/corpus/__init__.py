"""Where videos come from: ``ingest`` (each corpus format into one manifest, with its report),
``formats`` (one reader per corpus format), ``ids`` (file-name-safe video ids from URLs and
paths), ``download`` (yt-dlp, resumable) and ``demo`` (the generated demo corpus)."""
