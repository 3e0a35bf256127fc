"""plexus.data.fingerprint: the raw-folder listing that makes edits in place rerun ingest."""

from __future__ import annotations

import json
import os

from plexus.data.fingerprint import fingerprint, listing, refresh


def _tree(root):
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "images" / "a").mkdir(parents=True)
    for path in ("train/1_1.tif", "test/1.tif", "images/a/x.png", "images/b.png", "sheet.tsv", ".hidden"):
        (root / path).write_text(path)
    return root


def test_kaggle_listing_reads_train_and_test_only(tmp_path):
    root = _tree(tmp_path / "raw")
    assert [row[0] for row in listing(root)] == ["test/1.tif", "train/1_1.tif"]


def test_whole_tree_listing_leaves_out_hidden_files_and_the_excluded_sheet(tmp_path):
    root = _tree(tmp_path / "raw")
    names = [row[0] for row in listing(root, None)]
    assert names == ["images/a/x.png", "images/b.png", "sheet.tsv", "test/1.tif", "train/1_1.tif"]
    assert "sheet.tsv" not in [row[0] for row in listing(root, None, exclude=("sheet.tsv",))]


def test_refresh_rewrites_only_on_a_change_that_is_not_excluded(tmp_path):
    root = _tree(tmp_path / "raw")
    record = tmp_path / "fp.json"
    assert refresh(root, record, None, exclude=("sheet.tsv",))
    assert json.loads(record.read_text()) == fingerprint(root, None, exclude=("sheet.tsv",))
    assert not refresh(root, record, None, exclude=("sheet.tsv",))
    stat = (root / "sheet.tsv").stat()
    os.utime(root / "sheet.tsv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: ignored
    assert not refresh(root, record, None, exclude=("sheet.tsv",))
    (root / "images/b.png").write_text("rewritten, longer")
    assert refresh(root, record, None, exclude=("sheet.tsv",))
    assert not refresh(tmp_path / "absent", tmp_path / "other.json", None)
    assert not (tmp_path / "other.json").exists()
