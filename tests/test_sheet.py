import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from plexus.data.sheet import (
    NO_SUBJECT_WARNING,
    SheetError,
    SheetWarning,
    check_files,
    read_sheet,
    row_schema,
    write_sheet,
)

HEADER = ["image_id", "subject", "split", "image", "mask"]


def _write(path, rows, header=HEADER, sep="\t"):
    lines = [sep.join(header)] + [sep.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _png(path, shape, dtype=np.uint8, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros(shape, dtype=dtype) if value is None else np.full(shape, value, dtype=dtype)
    Image.fromarray(array).save(path)
    return path


GOOD = [
    ["p1_1", "p1", "train", "img/p1_1.png", "msk/p1_1.png"],
    ["p1_2", "p1", "train", "img/p1_2.png", "msk/p1_2.png"],
    ["t1", "", "test", "test/t1.png", ""],
]


def _error(path, **kwargs) -> SheetError:
    with pytest.raises(SheetError) as info:
        read_sheet(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def test_reads_tsv_as_strings_paths_resolved(tmp_path):
    sheet = read_sheet(_write(tmp_path / "s.tsv", GOOD))
    assert list(sheet.columns) == HEADER
    assert sheet["image_id"].tolist() == ["p1_1", "p1_2", "t1"]
    assert sheet.loc[2, "subject"] == "" and sheet.loc[2, "mask"] == ""
    assert not sheet.isna().any().any()
    assert sheet.loc[0, "image"] == str(tmp_path / "img" / "p1_1.png")
    assert sheet.loc[0, "mask"] == str(tmp_path / "msk" / "p1_1.png")
    assert sheet.attrs["sheet_rows"] == {"p1_1": 2, "p1_2": 3, "t1": 4}


def test_reads_csv_base_dir_absolute_paths_extra_columns(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "x.png")
    path = tmp_path / "sub" / "s.csv"
    path.parent.mkdir()
    path.write_text('image_id,subject,split,image,mask,comment\na, s1 ,train,a.png,' + absolute
                    + ',"note, with comma"\n')
    sheet = read_sheet(path, base_dir=tmp_path / "data")
    assert list(sheet.columns) == HEADER + ["comment"]
    assert sheet.loc[0, "subject"] == "s1"  # whitespace stripped
    assert sheet.loc[0, "image"] == str(tmp_path / "data" / "a.png")
    assert sheet.loc[0, "mask"] == absolute
    assert sheet.loc[0, "comment"] == "note, with comma"


def test_column_order_normalised_and_test_only_sheet_without_mask_column(tmp_path):
    path = _write(tmp_path / "s.tsv", [["x.png", "test", "x"]], header=["image", "split", "image_id"])
    with pytest.warns(SheetWarning):
        sheet = read_sheet(path)
    assert list(sheet.columns) == HEADER
    assert sheet.loc[0, "mask"] == ""


def test_missing_subject_column_warns_and_uses_image_id(tmp_path):
    rows = [[r[0], r[2], r[3], r[4]] for r in GOOD]
    path = _write(tmp_path / "s.tsv", rows, header=["image_id", "split", "image", "mask"])
    with pytest.warns(SheetWarning, match="no subject column") as record:
        sheet = read_sheet(path)
    assert NO_SUBJECT_WARNING in str(record[0].message) and str(path) in str(record[0].message)
    assert sheet["subject"].tolist() == sheet["image_id"].tolist()


def test_no_warning_with_subject_column(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_sheet(_write(tmp_path / "s.tsv", GOOD))


# (rows, fragment expected in the single problem); the bad row is always spreadsheet row 3
ROW_ERRORS = {
    "train_without_mask": ([GOOD[0], ["p1_2", "p1", "train", "i.png", ""]],
                           "row 3 (p1_2), column mask: a train row needs a mask"),
    "bad_split": ([GOOD[0], ["v1", "p1", "valid", "i.png", "m.png"]],
                  "row 3 (v1), column split: split 'valid' must be train or test"),
    "bad_image_id": ([GOOD[0], ["a b", "p1", "train", "i.png", "m.png"]],
                     "row 3 (a b), column image_id: image_id 'a b' is not a safe file name"),
    "leading_dot_id": ([GOOD[0], [".x", "p1", "train", "i.png", "m.png"]], "column image_id: image_id '.x'"),
    "empty_image_id": ([GOOD[0], ["", "p1", "train", "i.png", "m.png"]], "row 3, column image_id: image_id ''"),
    "train_without_subject": ([GOOD[0], ["p2", "", "train", "i.png", "m.png"]],
                              "row 3 (p2), column subject: a train row needs a subject"),
    "duplicate_id": ([GOOD[0], ["p1_1", "p1", "train", "i.png", "m.png"]],
                     "row 3 (p1_1), column image_id: duplicate image_id in row 2"),
    "case_duplicate_id": ([GOOD[0], ["P1_1", "p1", "train", "i.png", "m.png"]],
                          "row 3 (P1_1), column image_id: image_id differs only in case from 'p1_1' in row 2"),
    "empty_channel": ([GOOD[0], ["p2", "p1", "train", "", "m.png"]],
                      "row 3 (p2), column image: no image file"),
    "too_many_cells": ([GOOD[0], ["p2", "p1", "train", "i.png", "m.png", "extra"]],
                       "row 3: 6 cells, the header has 5"),
}


@pytest.mark.parametrize("case", ROW_ERRORS)
def test_each_row_error_is_one_problem_naming_row_and_column(tmp_path, case):
    rows, fragment = ROW_ERRORS[case]
    error = _error(_write(tmp_path / "s.tsv", rows))
    assert len(error.problems) == 1, error.problems
    assert fragment in error.problems[0]
    assert fragment in str(error)


def test_row_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("\t".join(HEADER) + "\n" + "\t".join(GOOD[0]) + "\n\n" + "x\tp\tbad\ti.png\t\n")
    assert _error(path).problems == ["row 4 (x), column split: split 'bad' must be train or test"]


def test_short_rows_are_padded(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("\t".join(HEADER) + "\n" + "t1\t\ttest\tt1.png\n")
    assert read_sheet(path).loc[0, "mask"] == ""


@pytest.mark.parametrize(("header", "fragment"), [
    (["image_id", "subject", "split", "mask"], "row 1: missing column(s) image"),
    (["image_id", "subject", "image", "mask"], "row 1: missing column(s) split"),
    (["image_id", "subject", "split", "image", "mask", "subject"], "row 1, column subject: the column appears twice"),
    (["image_id", "", "split", "image", "mask"], "row 1, column 2: empty column name"),
])
def test_header_errors(tmp_path, header, fragment):
    rows = [["a"] * len(header)]
    error = _error(_write(tmp_path / "s.tsv", rows, header=header))
    assert error.problems == [error.problems[0]] and fragment in error.problems[0]


def test_train_rows_without_mask_column(tmp_path):
    path = _write(tmp_path / "s.tsv", [["a", "s", "train", "a.png"]], header=["image_id", "subject", "split", "image"])
    assert _error(path).problems == ["row 2 (a): a train row needs a mask, and the sheet has no mask column"]


def test_tab_file_named_csv_gets_a_hint(tmp_path):
    error = _error(_write(tmp_path / "s.csv", GOOD))
    assert "missing column(s)" in error.problems[0]
    assert "tab-separated" in error.problems[1] and "*.tsv" in error.problems[1]


def test_unsupported_suffix_empty_and_missing(tmp_path):
    assert "unsupported file type '.txt'" in str(_error(_write(tmp_path / "s.txt", GOOD)))
    (tmp_path / "e.tsv").write_text("")
    assert "no header row" in str(_error(tmp_path / "e.tsv"))
    assert "no data rows" in str(_error(_write(tmp_path / "h.tsv", [])))
    with pytest.raises(FileNotFoundError, match="gone.tsv"):
        read_sheet(tmp_path / "gone.tsv")


def test_many_problems_listed_then_counted(tmp_path):
    rows = [[f"i{k}", "s", "train", "i.png", ""] for k in range(30)]
    error = _error(_write(tmp_path / "s.tsv", rows))
    assert len(error.problems) == 30
    message = str(error)
    assert message.startswith(f"30 problem(s) in sample sheet {tmp_path / 's.tsv'}:")
    assert "row 21 (i19)" in message and "row 22 (i20)" not in message
    assert message.endswith("... and 10 more")


def test_problems_of_several_rows_collected(tmp_path):
    rows = [GOOD[0], ["a", "s", "nope", "i.png", ""], ["b", "", "train", "i.png", "m.png"]]
    problems = _error(_write(tmp_path / "s.tsv", rows)).problems
    assert [p.split(",")[0] for p in problems] == ["row 3 (a)", "row 4 (b)"]


def test_custom_channels(tmp_path):
    header = ["image_id", "subject", "split", "t1", "t2", "mask"]
    path = _write(tmp_path / "s.tsv", [["a", "s", "train", "a1.png", "", "m.png"]], header=header)
    sheet = read_sheet(path, channels=("t1", "t2"))
    assert list(sheet.columns) == header and sheet.loc[0, "t2"] == ""
    assert "missing column(s) t3" in str(_error(path, channels=("t1", "t3")))
    both_empty = _write(tmp_path / "b.tsv", [["a", "s", "train", "", "", "m.png"]], header=header)
    message = str(_error(both_empty, channels=("t1", "t2")))
    assert "no image file (at least one of the channel column(s) t1, t2" in message
    for bad in (("mask",), ("subject",), ("t1", "t1"), ()):
        with pytest.raises(ValueError, match="channels"):
            read_sheet(path, channels=bad)
    assert {"t1", "t2"} <= set(row_schema(("t1", "t2"))["required"])


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_write_then_read_round_trip(tmp_path, suffix):
    frame = pd.DataFrame({
        "image_id": ["a", "b", "c"], "subject": ["s 1", "s,2", ""], "split": ["train", "train", "test"],
        "image": [str(tmp_path / "a.png"), str(tmp_path / 'b "q".png'), str(tmp_path / "c.png")],
        "mask": [str(tmp_path / "ma.png"), str(tmp_path / "mb.png"), ""],
        "note": ["x\ty", "", "ü"],
    }, dtype=str)
    path = tmp_path / f"out{suffix}"
    write_sheet(frame, path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    pd.testing.assert_frame_equal(read_sheet(path), frame)
    with pytest.raises(SheetError, match="unsupported file type"):
        write_sheet(frame, tmp_path / "out.xlsx")


# --- check_files -----------------------------------------------------------------------------

def _dataset(tmp_path):
    _png(tmp_path / "a.png", (6, 8))
    _png(tmp_path / "ma.png", (6, 8), value=255)
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((5, 7, 3), np.uint16), photometric="rgb")
    _png(tmp_path / "mb.png", (5, 7))
    _png(tmp_path / "c.png", (9, 9))
    rows = [["a", "s1", "train", "a.png", "ma.png"], ["b", "s2", "train", "b.tif", "mb.png"],
            ["c", "", "test", "c.png", ""]]
    return _write(tmp_path / "s.tsv", rows)


def test_check_files_sizes_may_differ_between_rows(tmp_path):
    sheet = read_sheet(_dataset(tmp_path))
    info = check_files(sheet, channels=("image",))
    assert list(info.columns) == ["image_id", "height", "width", "image_channels", "image_bits", "mask_bits"]
    assert info.to_dict("list") == {
        "image_id": ["a", "b", "c"], "height": [6, 5, 9], "width": [8, 7, 9],
        "image_channels": [1, 3, 1], "image_bits": [8, 16, 8], "mask_bits": [8, 8, 0]}
    assert check_files(sheet, read_pixels=True).equals(info)


def _check_error(sheet, **kwargs):
    with pytest.raises(SheetError) as info:
        check_files(sheet, **kwargs)
    return info.value


def test_check_files_missing_and_unreadable(tmp_path):
    sheet = read_sheet(_dataset(tmp_path))
    (tmp_path / "a.png").unlink()
    (tmp_path / "mb.png").write_text("not a png")
    problems = _check_error(sheet).problems
    assert problems == [f"row 2 (a), column image: {tmp_path / 'a.png'}: no such file",
                        f"row 3 (b), column mask: {tmp_path / 'mb.png'}: not a PNG file"]
    assert str(tmp_path / "s.tsv") in str(_check_error(sheet))


def test_check_files_mask_shape_and_channels(tmp_path):
    sheet = read_sheet(_dataset(tmp_path))
    _png(tmp_path / "ma.png", (6, 9))
    _png(tmp_path / "mb.png", (5, 7, 3))
    problems = _check_error(sheet).problems
    # an RGB mask may be colour-coded: its channels are checked against the classes by the manifest
    # (tests/test_real_layouts.py), not here
    assert problems == [f"row 2 (a), column mask: {tmp_path / 'ma.png'}: the mask is 6x9, the image is 6x8"]


def test_check_files_channels_of_a_row_must_agree(tmp_path):
    header = ["image_id", "subject", "split", "t1", "t2", "mask"]
    _png(tmp_path / "a1.png", (6, 8))
    _png(tmp_path / "a2.png", (6, 9), dtype=np.uint16)
    _png(tmp_path / "b1.png", (4, 4))
    _png(tmp_path / "mb.png", (4, 4))
    _png(tmp_path / "ma.png", (6, 8))
    path = _write(tmp_path / "s.tsv", [["a", "s", "train", "a1.png", "a2.png", "ma.png"],
                                       ["b", "s", "train", "b1.png", "", "mb.png"]], header=header)
    sheet = read_sheet(path, channels=("t1", "t2"))
    problems = _check_error(sheet, channels=("t1", "t2")).problems
    assert problems == [
        f"row 2 (a): the channels differ in size: t1 6x8 ({tmp_path / 'a1.png'}), t2 6x9 ({tmp_path / 'a2.png'})",
        "row 3 (b), column t2: empty (every channel needs a file unless missing channels are allowed)"]
    _png(tmp_path / "a2.png", (6, 8), dtype=np.uint16)
    info = check_files(sheet, channels=("t1", "t2"), allow_missing_channels=True)
    assert info[["t1_bits", "t2_bits", "t2_channels"]].values.tolist() == [[8, 16, 1], [8, 0, 0]]


def test_check_files_read_pixels_catches_truncation(tmp_path):
    sheet = read_sheet(_dataset(tmp_path))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "c.png")
    sheet_c = sheet[sheet["image_id"] == "c"]
    (tmp_path / "c.png").write_bytes((tmp_path / "c.png").read_bytes()[:200])
    check_files(sheet_c)  # header only: passes
    problems = _check_error(sheet_c, read_pixels=True).problems
    assert len(problems) == 1 and problems[0].startswith(f"row 4 (c), column image: {tmp_path / 'c.png'}: unreadable")


def test_check_files_on_a_plain_frame_names_image_ids(tmp_path):
    frame = pd.DataFrame({"image_id": ["z"], "subject": ["z"], "split": ["train"],
                          "image": [str(tmp_path / "none.png")], "mask": [str(tmp_path / "m.png")]})
    problems = _check_error(frame).problems
    assert problems[0].startswith("image_id z, column image: ") and "no such file" in problems[0]


def test_schema_is_a_valid_json_schema_and_checks_rows():
    import jsonschema

    schema = row_schema(("t1", "t2"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    row = {"image_id": "a", "subject": "s", "split": "train", "t1": "x.png", "t2": "", "mask": "m.png"}
    assert list(validator.iter_errors(row)) == []
    assert [e.validator for e in validator.iter_errors({**row, "mask": ""})] == ["minLength"]
    # a test row's mask is a labelled test set's (data.test_masks, checked by the test manifest)
    assert list(validator.iter_errors({**row, "split": "test"})) == []
    assert [e.validator for e in validator.iter_errors({k: v for k, v in row.items() if k != "t2"})] == ["required"]
