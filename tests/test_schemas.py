"""Table contracts on polars: strict kinds, exact round trips, lazy column reads."""

from __future__ import annotations

import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lib import schemas


def _predictions():
    return pl.DataFrame({
        "clip_id": ["a__orig", "a__a0", "b__orig"], "video_id": ["a", "a", "b"],
        "label": ["fake", "fake", "real"], "score": [0.1 + 0.2, float("nan"), 1 / 3],
        "pred": ["fake", "real", None], "aug_idx": [-1, 0, -1],
        "score_fake": [0.1 + 0.2, 5e-324, 2 / 3], "note": [None, "x", ""],
    })  # fmt: skip


def test_csv_read_back_is_the_frame_written(tmp_path):
    written = schemas.write_table(_predictions(), tmp_path / "p.csv", "predictions")
    assert written.schema["aug_idx"] == pl.Int64 and written.schema["clip_id"] == pl.String
    assert written["pred"].to_list() == ["fake", "real", ""]  # missing text is ""
    assert math.isnan(written["score"][1]) and written["score"].null_count() == 0
    back = schemas.read_table(tmp_path / "p.csv", "predictions")
    assert_frame_equal(back, written)
    for column in ("score", "score_fake"):  # floats bit for bit, NaN included
        assert back[column].to_numpy().tobytes() == written[column].to_numpy().tobytes()


def test_kinds_are_strict_and_errors_name_the_column(tmp_path):
    folds = pl.DataFrame({"video_id": [1, 2], "dup_group": ["g", "h"], "label": ["x", "y"],
                          "fold": [0.0, 1.0]})  # fmt: skip
    out = schemas.conform(folds, "folds")
    assert out["video_id"].to_list() == ["1", "2"] and out.schema["fold"] == pl.Int64
    with pytest.raises(schemas.TableError, match="'fold' must hold integers"):
        schemas.conform(folds.with_columns(fold=pl.Series([0.0, 1.5])), "folds")
    (tmp_path / "f.csv").write_text("video_id,dup_group,label,fold\na,g,x,1.5\n")
    with pytest.raises(schemas.TableError, match="'fold'"):
        schemas.read_table(tmp_path / "f.csv", "folds")
    (tmp_path / "m.csv").write_text("video_id,url,label,dup_group,platform,is_original\n"
                                    "a,u,fake,g,p,yes\n")  # fmt: skip
    with pytest.raises(schemas.TableError, match="'is_original'.*boolean"):
        schemas.read_table(tmp_path / "m.csv", "manifest")


def test_a_failed_check_names_the_file_and_the_fix(tmp_path):
    bad = pl.DataFrame({"video_id": ["a", "a"], "dup_group": ["g", "g"], "label": ["x", "x"],
                        "fold": [0, -1]})  # fmt: skip
    with pytest.raises(schemas.TableError, match=r"f\.csv: does not match the 'folds'(.|\n)*Fix:"):
        schemas.write_table(bad, tmp_path / "f.csv", "folds")
    assert not (tmp_path / "f.csv").exists()


def test_read_table_scans_only_the_columns_asked_for(tmp_path):
    features = pl.DataFrame({"clip_id": ["a", "b"], "hc_x": [1.0, 2.0], "hc_y": [3.0, 4.0],
                             "sc_z": [5.0, float("nan")]})  # fmt: skip
    for name in ("f.parquet", "f.csv"):
        schemas.write_table(features, tmp_path / name, "features")
        some = schemas.read_table(tmp_path / name, "features", columns=["sc_z"])
        assert some.columns == ["clip_id", "sc_z"]
        assert_frame_equal(some, features.select("clip_id", "sc_z"))
