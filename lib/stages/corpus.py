"""Stages ``demo-corpus`` (write the bundled demo corpus) and ``manifest`` (ingest a corpus
into ``results/manifest.csv`` and its report)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from lib import schemas
from lib.corpus.demo import generate_demo_corpus
from lib.corpus.ingest import build_manifest, check_trainable, write_ingest_report


def run_demo_corpus(*, out_dir: str | Path, n_jobs: int, n_groups: int, seed: int) -> None:
    """Write the demo corpus (videos and ``index.csv``) into ``out_dir``; ``n_groups`` and
    ``seed`` are the ``demo`` config section."""
    generate_demo_corpus(out_dir, n_groups=n_groups, seed=seed, n_jobs=n_jobs)


def run_manifest(
    *,
    output: str | Path,
    report: str | Path,
    format: str,
    path: str,
    label_map: dict | None,
    keep_labels: list[str] | None,
    label_precedence: list[str],
    folder_group: str,
    allow_file_urls: bool,
    section: str = "dataset",
) -> None:
    """Ingest the ``dataset`` config section's corpus: the manifest table and its report.

    Refuses a corpus that cannot be trained on (:func:`lib.corpus.ingest.check_trainable`),
    naming the keys of ``section``.
    """
    # false = the format's own choice: the demo opts in by itself, every other corpus refuses.
    manifest, ingest_report = build_manifest(
        format,
        path,
        label_map=label_map,
        keep_labels=keep_labels,
        label_precedence=label_precedence,
        folder_group=folder_group,
        allow_file_urls=allow_file_urls or None,
    )
    check_trainable(manifest, ingest_report, section=section)
    schemas.write_table(manifest, output, "manifest")
    write_ingest_report(ingest_report, report)


#: Stage ``test-corpus-manifest``: the ``test_corpus`` section's corpus, ingested as the
#: dataset is; a refusal names the test_corpus keys.
run_test_corpus_manifest = partial(run_manifest, section="test_corpus")
