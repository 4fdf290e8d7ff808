"""Command line of vidstage: ``python -m lib <stage> ...``, one subcommand per stage.

The Snakemake rules call exactly these commands, so every stage can also be run, rerun or
debugged by hand on one shard, e.g.::

    python -m lib validate --downloads results/download.csv --shard 1-of-4 --out /tmp/v.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time

from lib import __version__

log = logging.getLogger("vidstage")


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:80]}") from exc


def _shard(text: str):
    from lib.shards import Shard

    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_shard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=_shard, default="1-of-1",
                   help="which slice of the input table to process, 'I-of-N' (1-based; "
                        "job I of N takes rows [(I-1)*rows//N, I*rows//N)); default 1-of-1")  # fmt: skip
    p.add_argument("--progress-dir", default="results/.progress",
                   help="where per-shard progress survives a crash (default: %(default)s)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib",
        description="vidstage stages. Each reads a table, processes one shard of it "
        "(resumably: finished videos are skipped on a rerun) and writes a table. "
        "The Snakemake workflow chains them; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"vidstage {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("demo-corpus", help="generate the bundled demo corpus")
    p.add_argument("--out-dir", required=True, help="folder for the videos and index.csv")
    p.add_argument("--n-groups", type=int, default=40, help="duplicate groups (default 40)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")

    p = sub.add_parser("manifest", help="ingest a corpus into results/manifest.csv")
    p.add_argument("--format", required=True, choices=["fvc", "csv", "folder", "wlasl", "demo"])
    p.add_argument("--path", required=True, help="the corpus file or folder")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.add_argument("--report", required=True, help="ingest report (markdown) to write")
    p.add_argument("--label-map", type=_json, default=None,
                   help='JSON {"source label": "target label" or null to drop}')  # fmt: skip
    p.add_argument("--allow-file-urls", action="store_true", default=None,
                   help="accept file:// URLs in the corpus's url column (demo: always)")  # fmt: skip

    p = sub.add_parser("download", help="fetch one shard of the manifest (yt-dlp; local files linked)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help="shard download table to write")
    p.add_argument("--videos-dir", default="data/videos")
    p.add_argument("--options", type=_json, default={},
                   help="JSON of download options (config 'download' section)")  # fmt: skip
    p.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                   help="keep earlier failures (from --previous) instead of retrying them")  # fmt: skip
    p.add_argument("--previous", default=None, help="an earlier results/download.csv")
    p.add_argument("--recheck", default=None,
                   help="an earlier results/videos.csv: files it found broken are fetched "
                        "again (unless --no-retry-failed)")  # fmt: skip
    _add_shard(p)

    p = sub.add_parser("validate", help="probe one shard of the downloads with PyAV")
    p.add_argument("--downloads", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limits", type=_json, default={},
                   help="JSON of probe limits (config 'validate' section)")  # fmt: skip
    _add_shard(p)

    p = sub.add_parser("augment", help="write augmented clips of one shard of valid videos")
    p.add_argument("--videos", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--clips-dir", default="data/clips")
    p.add_argument("--n-augmentations", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-frames", type=int, default=250, help="frames per augmented clip")
    p.add_argument("--crf", type=int, default=18, help="x264 CRF of the clips (18 ≈ lossless)")
    p.add_argument("--preset", default="veryfast", help="x264 preset of the clips")
    _add_shard(p)

    for name, src, what in (("features", "--clips", "handcrafted features of clips"),
                            ("scaled-features", "--scaled", "features of scaled clips")):  # fmt: skip
        p = sub.add_parser(name, help=f"{what} for one shard")
        p.add_argument(src, required=True, dest="table")
        p.add_argument("--out", required=True)
        p.add_argument("--sampling", type=_json, default={},
                       help='JSON {"fraction": 0.1, "min_frames": 5, "max_frames": 50}')  # fmt: skip
        _add_shard(p)

    p = sub.add_parser("signatures", help="perceptual-hash signatures of one shard of videos")
    p.add_argument("--videos", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sampling", type=_json, default={},
                   help='JSON {"frames_per_second": 1.0, "min_frames": 16, "max_frames": 64}')  # fmt: skip
    _add_shard(p)

    p = sub.add_parser("near-duplicates", help="leak audit: match all signatures, report leaks")
    p.add_argument("--videos", required=True)
    p.add_argument("--signatures", required=True)
    p.add_argument("--out", required=True, help="pairs table (near_duplicates.csv)")
    p.add_argument("--report", required=True, help="leak report (markdown) to write")
    p.add_argument("--match", type=_json, default={},
                   help='JSON of matching parameters (config "near_duplicates" section)')  # fmt: skip
    p.add_argument("--k", type=int, default=5, help="folds of the annotated-only split judged")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-by", default="both", choices=["annotated", "content", "both"],
                   help="what the folds use (stated in the report)")  # fmt: skip

    p = sub.add_parser("scale", help="scale one shard of clips onto a square canvas")
    p.add_argument("--clips", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scaled-dir", default="data/scaled")
    p.add_argument("--method", default="letterbox", choices=["letterbox", "autoencoder"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", default=None, help="VAE hub id or local path (autoencoder)")
    p.add_argument("--chunk-frames", type=int, default=100)
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    _add_shard(p)

    p = sub.add_parser("gather", help="concatenate shard tables in shard order")
    p.add_argument("--kind", required=True, help="table kind (lib/schemas.py)")
    p.add_argument("--stage", default=None, help="stage name, to log its failures by reason")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")

    p = sub.add_parser("completeness", help="expected vs present rows per stage, and why")
    p.add_argument("--root", default=".", help="folder holding results/ (default: .)")
    p.add_argument("--md", required=True, help="markdown report to write")
    p.add_argument("--csv", required=True, help="per-stage counts to write")
    p.add_argument("--n-augmentations", type=int, required=True)

    p = sub.add_parser("merge-features", help="join both feature tables into one parquet")
    p.add_argument("--handcrafted", required=True)
    p.add_argument("--scaled", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("folds", help="grouped, stratified k-fold assignment of videos")
    p.add_argument("--videos", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-by", default="annotated", choices=["annotated", "content", "both"],
                   help="groups kept in one fold: annotated, content matches, or both joined")  # fmt: skip
    p.add_argument("--near-duplicates", default=None,
                   help="near_duplicates.csv (needed unless --group-by annotated)")  # fmt: skip

    p = sub.add_parser("train", help="fit one model on all folds but one, predict that one",
                       description="Feature models (logreg, ...) read --features; deep models "
                       "(naive_cnn, vit_gru, vit_transformer, videomae, timesformer) read the "
                       "scaled clips (--scaled), choose their epoch on an inner split of the "
                       "training folds, checkpoint every epoch under --checkpoint-dir and "
                       "resume from it when rerun.")  # fmt: skip
    p.add_argument("--features", default=None, help="features table (feature models)")
    p.add_argument("--scaled", default=None, help="scaled clips table (deep models)")
    p.add_argument("--clips", required=True)
    p.add_argument("--folds", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--params", type=_json, default={},
                   help="JSON: keyword arguments (feature models) or the model's settings "
                        "(deep models: config train.deep.<model>)")  # fmt: skip
    p.add_argument("--checkpoint-dir", default=None,
                   help="deep models: where checkpoints survive a killed job "
                        "(default results/.checkpoints/<model>/fold-<k>)")  # fmt: skip
    p.add_argument("--positive-label", default="fake")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train-final", help="fit one model on every fold (for predict)")
    for name in ("--features", "--clips", "--folds", "--out-dir", "--model"):
        p.add_argument(name, required=True)
    p.add_argument("--params", type=_json, default={})
    p.add_argument("--positive-label", default="fake")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("permutation", help="permutation test of one feature model: null "
                       "distribution of the headline ROC-AUC under permuted group labels")  # fmt: skip
    for name in ("--features", "--clips", "--folds", "--out", "--model"):
        p.add_argument(name, required=True)
    p.add_argument("--n-permutations", type=int, default=100)
    p.add_argument("--params", type=_json, default={})
    p.add_argument("--positive-label", default="fake")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("evaluate", help="headline metrics on held-out originals, intervals, "
                       "p-values, robustness per augmentation type, report plots")  # fmt: skip
    p.add_argument("--metrics", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--report-dir", required=True)
    p.add_argument("--clips", required=True, help="results/clips.csv (augmentation types)")
    p.add_argument("--folds", required=True, help="results/folds.csv (duplicate groups)")
    p.add_argument("--videos", default=None, help="results/videos.csv (platforms)")
    p.add_argument("--permutations", nargs="*", default=[],
                   help="results/models/<model>/permutation.csv files")  # fmt: skip
    p.add_argument("--robustness", default=None, help="robustness table to write")
    p.add_argument("--platform", default=None, help="per-platform metrics to write")
    p.add_argument("--confusion", default=None, help="confusion matrices to write")
    p.add_argument("--bootstrap", type=int, default=1000, help="group bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--positive-label", default="fake")
    p.add_argument("--config", type=_json, default={}, help="resolved config to record")
    p.add_argument("predictions", nargs="+")

    p = sub.add_parser("data-quality", help="data-quality table and figure for the report")
    for name in ("--manifest", "--downloads", "--videos", "--table", "--failures", "--plot"):
        p.add_argument(name, required=True)

    p = sub.add_parser("predict", help="classify new videos (a folder or a manifest CSV)")
    p.add_argument("--input", required=True, help="folder of videos or CSV with a path column")
    p.add_argument("--model-dir", required=True, help="results/models/<model>/final")
    p.add_argument("--out", required=True, help="one row per video")
    p.add_argument("--windows-out", default=None, help="one row per window")
    p.add_argument("--window-frames", type=int, default=250)
    p.add_argument("--stride-frames", type=int, default=250)
    p.add_argument("--sampling", type=_json, default={})
    p.add_argument("--scale-size", type=int, default=256)
    p.add_argument("--crf", type=int, default=18, help="x264 CRF of the scaled windows")
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--limits", type=_json, default={}, help="probe limits (config 'validate')")
    return parser


def run(args: argparse.Namespace) -> None:
    from lib import schemas, stages

    cmd = args.command
    if cmd == "demo-corpus":
        from lib.demo import generate_demo_corpus

        generate_demo_corpus(args.out_dir, n_groups=args.n_groups, seed=args.seed)
    elif cmd == "manifest":
        from lib.ingest import build_manifest, check_trainable, write_ingest_report

        manifest, report = build_manifest(args.format, args.path, label_map=args.label_map,
                                          allow_file_urls=args.allow_file_urls)  # fmt: skip
        check_trainable(manifest, report)
        schemas.write_table(manifest, args.out, "manifest")
        write_ingest_report(report, args.report)
    elif cmd == "download":
        stages.download_shard(args.manifest, args.out, args.shard, videos_dir=args.videos_dir,
                              options=args.options, retry_failed=args.retry_failed,
                              previous=args.previous, recheck=args.recheck,
                              progress_dir=args.progress_dir)  # fmt: skip
    elif cmd == "validate":
        stages.validate_shard(args.downloads, args.out, args.shard, limits=args.limits,
                              progress_dir=args.progress_dir)  # fmt: skip
    elif cmd == "augment":
        stages.augment_shard(args.videos, args.out, args.shard, clips_dir=args.clips_dir,
                             n_augmentations=args.n_augmentations, seed=args.seed,
                             max_frames=args.max_frames, crf=args.crf, preset=args.preset,
                             progress_dir=args.progress_dir)  # fmt: skip
    elif cmd in ("features", "scaled-features"):
        fn = stages.features_shard if cmd == "features" else stages.scaled_features_shard
        fn(args.table, args.out, args.shard, sampling=args.sampling,
           progress_dir=args.progress_dir)  # fmt: skip
    elif cmd == "signatures":
        stages.signatures_shard(args.videos, args.out, args.shard, sampling=args.sampling,
                                progress_dir=args.progress_dir)  # fmt: skip
    elif cmd == "near-duplicates":
        from lib.near_duplicates import audit
        from lib.utils import atomic_write_text

        pairs, report = audit(schemas.read_table(args.videos, "videos"),
                              schemas.read_table(args.signatures, "signatures"), n_folds=args.k,
                              random_state=args.seed, group_by=args.group_by, match=args.match)  # fmt: skip
        schemas.write_table(pairs, args.out, "near_duplicates")
        atomic_write_text(args.report, report)
    elif cmd == "scale":
        stages.scale_shard(args.clips, args.out, args.shard, scaled_dir=args.scaled_dir,
                           method=args.method, size=args.size, model=args.model,
                           chunk_frames=args.chunk_frames, crf=args.crf, preset=args.preset,
                           device=args.device, progress_dir=args.progress_dir)  # fmt: skip
    elif cmd == "gather":
        from lib.shards import concat_tables

        table = schemas.write_table(concat_tables(args.inputs, args.kind), args.out, args.kind)
        if args.stage:
            from lib.completeness import log_stage_summary

            log_stage_summary(args.stage, table)
    elif cmd == "completeness":
        from lib.completeness import write_completeness

        write_completeness(args.root, args.md, args.csv, n_augmentations=args.n_augmentations)
    elif cmd == "merge-features":
        stages.merge_features(args.handcrafted, args.scaled, args.out)
    elif cmd == "folds":
        from lib.folds import assign_folds, check_folds

        videos = schemas.read_table(args.videos, "videos")
        if args.group_by != "annotated":  # groups joined by the leak audit's matches
            from lib.near_duplicates import regroup

            videos = regroup(videos, args.near_duplicates, args.group_by)
        folds = assign_folds(videos, n_folds=args.k, random_state=args.seed)
        check_folds(folds)
        schemas.write_table(folds, args.out, "folds")
    elif cmd == "train":
        from lib.train.registry import is_deep

        if is_deep(args.model):
            from lib.train.loop import train_deep_fold

            if not args.scaled:
                raise ValueError(f"{args.model} is a deep model: give --scaled results/scaled.csv")
            train_deep_fold(args.scaled, args.clips, args.folds, args.out_dir,
                            model_name=args.model, fold=args.fold, settings=args.params,
                            positive_label=args.positive_label, random_state=args.seed,
                            checkpoint_dir=args.checkpoint_dir)  # fmt: skip
            return
        from lib.train.feature_models import train_fold

        if not args.features:
            raise ValueError(f"{args.model} is a feature model: give --features")
        train_fold(args.features, args.clips, args.folds, args.out_dir, model_name=args.model,
                   fold=args.fold, params=args.params, positive_label=args.positive_label,
                   random_state=args.seed)  # fmt: skip
    elif cmd == "train-final":
        from lib.train.feature_models import train_fold

        train_fold(args.features, args.clips, args.folds, args.out_dir, model_name=args.model,
                   fold=-1, params=args.params, positive_label=args.positive_label,
                   random_state=args.seed)  # fmt: skip
    elif cmd == "permutation":
        from lib.train.feature_models import run_permutation_test

        run_permutation_test(args.features, args.clips, args.folds, args.out,
                             model_name=args.model, n_permutations=args.n_permutations,
                             params=args.params, positive_label=args.positive_label,
                             random_state=args.seed)  # fmt: skip
    elif cmd == "evaluate":
        from lib.evaluate import evaluate

        evaluate(args.predictions, args.metrics, args.summary, args.report_dir,
                 clips_path=args.clips, folds_path=args.folds, videos_path=args.videos,
                 permutation_paths=args.permutations, robustness_path=args.robustness,
                 platform_path=args.platform, confusion_path=args.confusion,
                 positive_label=args.positive_label, n_bootstrap=args.bootstrap,
                 random_state=args.seed, config=args.config)  # fmt: skip
    elif cmd == "data-quality":
        from lib.report import data_quality

        data_quality(args.manifest, args.downloads, args.videos, args.table, args.failures,
                     args.plot)  # fmt: skip
    elif cmd == "predict":
        from lib.predict import predict_videos

        predict_videos(args.input, args.model_dir, args.out, windows_out=args.windows_out,
                       window_frames=args.window_frames, stride_frames=args.stride_frames,
                       sampling=args.sampling, scale_size=args.scale_size, crf=args.crf,
                       preset=args.preset, limits=args.limits)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    log.info("vidstage %s: %s (python %s, pid %d, host %s)", __version__, " ".join(sys.argv[1:]),
             platform.python_version(), os.getpid(), platform.node())  # fmt: skip
    start = time.perf_counter()
    try:
        run(args)
    except Exception:
        log.exception("%s failed after %.1f s", args.command, time.perf_counter() - start)
        return 1
    from lib.memory import rss_mb

    log.info("%s done in %.1f s (rss %.0f MiB)", args.command, time.perf_counter() - start,
             rss_mb())  # fmt: skip
    return 0
