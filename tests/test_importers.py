import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from plexus.data import ingest
from plexus.data.importers import IMPORTERS, LayoutError, folders, import_dataset, kaggle_nerve
from plexus.data.sheet import SheetWarning, check_files, read_sheet, write_sheet
from plexus.io.tiff import write_tiff

SHAPE = (6, 8)


def _tif(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tiff(path, np.full(SHAPE, value, dtype=np.uint8))


def _png(path, shape=SHAPE, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)


@pytest.fixture
def nerve(tmp_path):
    raw = tmp_path / "raw"
    for s, i in [(1, 1), (1, 2), (2, 1), (10, 3), (2, 10)]:
        _tif(raw / "train" / f"{s}_{i}.tif", s + i)
        _tif(raw / "train" / f"{s}_{i}_mask.tif", 255 if i == 1 else 0)
    for n in (2, 1, 10):
        _tif(raw / "test" / f"{n}.tif", n)
    (raw / "train" / "README.txt").write_text("ignored, as by ingest")
    return raw


# --- kaggle_nerve ------------------------------------------------------------------------------

def test_kaggle_nerve_sheet_by_hand_and_in_the_run_length_tables_order(nerve):
    sheet = kaggle_nerve(nerve)
    train_masks = ingest.check_layout(nerve, shape=SHAPE, threads=1)
    rows = sheet[sheet["split"] == "train"]
    assert rows["image_id"].tolist() == ["1_1", "1_2", "2_1", "2_10", "10_3"]  # by (subject, image) number
    assert (train_masks["subject"].astype(str) + "_" + train_masks["img"].astype(str)).tolist() == \
        rows["image_id"].tolist()
    assert rows["subject"].tolist() == ["1", "1", "2", "2", "10"]
    assert rows["image"].tolist() == [str(nerve.absolute() / "train" / f"{i}.tif") for i in rows["image_id"]]
    assert rows["mask"].tolist() == [str(nerve.absolute() / "train" / f"{i}_mask.tif") for i in rows["image_id"]]
    tests = sheet[sheet["split"] == "test"]
    assert tests["image_id"].tolist() == ["1", "2", "10"]
    assert tests["image"].tolist() == [str(nerve.absolute() / "test" / f"{i}.tif") for i in tests["image_id"]]
    assert set(tests["subject"]) == {""} and set(tests["mask"]) == {""}
    assert list(sheet.columns) == ["image_id", "subject", "split", "image", "mask"]


def test_kaggle_nerve_naming_problems_as_ingest(nerve):
    (nerve / "train" / "1_2_mask.tif").unlink()      # image without a mask
    (nerve / "train" / "2_1.tif").unlink()           # mask without an image
    _tif(nerve / "train" / "3-1.tif")                # malformed
    _tif(nerve / "test" / "07.tif")                  # malformed (leading zero)
    with pytest.raises(LayoutError) as mine:
        kaggle_nerve(nerve)
    with pytest.raises(ingest.IngestError) as theirs:
        ingest.check_layout(nerve, shape=SHAPE, threads=1)
    assert len(mine.value.problems) == 4
    assert sorted(mine.value.problems) == sorted(theirs.value.problems)
    assert any("1_2.tif: image without a mask (expected" in p for p in mine.value.problems)
    assert any("2_1_mask.tif: mask without an image (expected" in p for p in mine.value.problems)


def test_kaggle_nerve_missing_folders(tmp_path):
    with pytest.raises(LayoutError) as info:
        kaggle_nerve(tmp_path)
    assert info.value.problems == [
        f"{tmp_path / 'train'}: folder not found (expected the Kaggle layout train/ and test/)",
        f"{tmp_path / 'test'}: folder not found (expected the Kaggle layout train/ and test/)"]


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_kaggle_nerve_round_trip(nerve, tmp_path, suffix):
    sheet = kaggle_nerve(nerve)
    path = tmp_path / "out" / f"samples{suffix}"
    write_sheet(sheet, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_sheet(path)
    pd.testing.assert_frame_equal(again, sheet)
    info = check_files(again)
    assert set(info["height"]) == {6} and set(info["width"]) == {8}


# --- folders -----------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "data"
    for stem in ("p01_a", "p01_b", "p02_a"):
        _png(root / "images" / f"{stem}.png")
    _png(root / "masks" / "p01_a.png")
    tifffile.imwrite(root / "masks" / "p01_b_mask.tif", np.zeros(SHAPE, np.uint8))
    _png(root / "masks" / "p02_a_mask.png")
    _png(root / "test" / "q9.png", shape=(3, 5))
    (root / "images" / ".DS_Store").write_text("hidden files are ignored")
    return root


def test_folders_with_subject_pattern(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sheet = folders(tree, subject_pattern=r"(?P<subject>p\d+)_.*")
    assert sheet.to_dict("list") == {
        "image_id": ["p01_a", "p01_b", "p02_a", "q9"],
        "subject": ["p01", "p01", "p02", ""],
        "split": ["train", "train", "train", "test"],
        "image": [str(tree / "images" / f"{s}.png") for s in ("p01_a", "p01_b", "p02_a")]
        + [str(tree / "test" / "q9.png")],
        "mask": [str(tree / "masks" / "p01_a.png"), str(tree / "masks" / "p01_b_mask.tif"),
                 str(tree / "masks" / "p02_a_mask.png"), ""],
    }


def test_folders_without_pattern_warns_and_round_trips(tree, tmp_path):
    with pytest.warns(SheetWarning, match="no subject column: each image is its own group"):
        sheet = folders(tree)
    assert sheet["subject"].tolist() == sheet["image_id"].tolist()
    write_sheet(sheet, tmp_path / "s.tsv")
    pd.testing.assert_frame_equal(read_sheet(tmp_path / "s.tsv"), sheet)
    info = check_files(read_sheet(tmp_path / "s.tsv"))
    assert info["height"].tolist() == [6, 6, 6, 3]  # sizes differ between rows: allowed


def _layout_error(root, **kwargs):
    with pytest.raises(LayoutError) as info:
        folders(root, **kwargs)
    assert str(root) in str(info.value)
    return info.value.problems


def test_folders_unmatched_files_named(tree):
    (tree / "masks" / "p01_a.png").unlink()
    _png(tree / "masks" / "zz_mask.png")
    problems = _layout_error(tree, subject_pattern=r"(?P<subject>p\d+)_.*")
    assert problems == [
        f"{tree / 'images' / 'p01_a.png'}: image without a mask (expected {tree / 'masks'}/p01_a.png or "
        f"{tree / 'masks'}/p01_a_mask.png; any image type also does)",
        f"{tree / 'masks' / 'zz_mask.png'}: mask without an image (expected an image in {tree / 'images'} whose "
        "mask it is under mask_template '{stem}')"]


def test_folders_two_masks_for_one_image(tree):
    _png(tree / "masks" / "p01_a_mask.png")
    assert _layout_error(tree) == [f"{tree / 'images' / 'p01_a.png'}: two masks match, p01_a.png and "
                                   "p01_a_mask.png (keep one, or set data.folders.mask_template)"]


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda t: (t / "images" / "notes.txt").write_text("x"), "notes.txt: unsupported file type"),
    (lambda t: (t / "images" / "sub").mkdir(), "sub: unexpected folder"),
    (lambda t: _png(t / "images" / "p01_a.tif"), "p01_a.tif: same name as p01_a.png"),
    (lambda t: _png(t / "test" / "P01_A.png"), "P01_A.png: same image_id 'P01_A' as"),
    (lambda t: _png(t / "test" / "---.png"), "---.png: the name '---' cannot be an image_id"),
])
def test_folders_stray_files(tree, make, fragment):
    make(tree)
    problems = _layout_error(tree)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_folders_subject_pattern_problems(tree):
    _png(tree / "images" / "x_1.png")
    _png(tree / "masks" / "x_1.png")
    problems = _layout_error(tree, subject_pattern=r"(?P<subject>p\d+)_.*")
    assert problems == [f"{tree / 'images' / 'x_1.png'}: the name 'x_1' does not match subject_pattern "
                        r"'(?P<subject>p\\d+)_.*'"]
    problems = _layout_error(tree, subject_pattern=r"(?P<subject>p\d+)")  # the whole stem must match
    assert len(problems) == 4 and "p01_a' does not match subject_pattern" in problems[0]
    with pytest.raises(ValueError, match="no named group"):
        folders(tree, subject_pattern=r"p\d+_.*")


def test_folders_missing_folders(tmp_path):
    problems = _layout_error(tmp_path)
    assert [p.split(":")[0] for p in problems] == [str(tmp_path / "images"), str(tmp_path / "masks")]


def test_folders_custom_names_and_no_test(tree):
    (tree / "images").rename(tree / "img")
    (tree / "masks").rename(tree / "gt")
    with pytest.warns(SheetWarning):
        sheet = folders(tree, images="img", masks="gt", test=None)
    assert sheet["split"].tolist() == ["train"] * 3


# --- registry ----------------------------------------------------------------------------------

def test_registry(nerve, tree, tmp_path):
    assert set(IMPORTERS) == {"kaggle_nerve", "folders", "sheet"}
    pd.testing.assert_frame_equal(import_dataset("kaggle_nerve", nerve), kaggle_nerve(nerve))
    sheet = import_dataset("folders", tree, subject_pattern=r"(?P<subject>p\d+)_.*")
    write_sheet(sheet, tmp_path / "s.csv")
    pd.testing.assert_frame_equal(import_dataset("sheet", tmp_path / "s.csv"), sheet)
    with pytest.raises(ValueError, match="unknown importer 'dsb' \\(known: folders, kaggle_nerve, sheet\\)"):
        import_dataset("dsb", tree)
