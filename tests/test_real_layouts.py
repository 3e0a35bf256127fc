"""Real public datasets as they come (issue #19): tiny replicas of their layouts and formats, each
run through the manifest, folds and preprocess stages exactly as the workflow runs them.

Every replica is written here, in the test, from the facts the datasets publish (names, folders,
file types, mask encodings); plexus never sees the real data. Expectations are independent:
the class maps are what the test painted, the ids what the test named the files.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from plexus.data.dataset import build_manifest, class_mask, convert_color
from plexus.data.importers import LayoutError, folders, safe_id
from plexus.data.sheet import SheetError, read_sheet
from plexus.evaluation.bootstrap import group_codes
from plexus.evaluation.multiclass import class_scores, snap_to_values, to_class_index
from plexus.io.atomic import write_csv
from plexus.io.contracts import read_folds, read_manifest, read_npz, read_table
from plexus.io.images import ImageError, read_image, read_mask
from plexus.labels import IGNORE_LABEL
from plexus.postprocess.multiclass import write_label_map
from plexus.stages.data import folds_stage, preprocess_stage
from plexus.stages.data import sheet_manifest as manifest_stage

RNG = np.random.default_rng(3)
H, W = 12, 16


def _blob(value: int = 1, shift: int = 0) -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[3 + shift % 4:8 + shift % 4, 4:11] = value
    return label


def _gray(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _rgb(h: int = H, w: int = W) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _palette(path, label: np.ndarray, palette=(0, 0, 0, 255, 0, 0, 0, 255, 0)) -> None:
    image = Image.fromarray(label, mode="P")
    image.putpalette(list(palette))
    image.save(path)


def _save(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _data(raw, **folders_options) -> dict:
    """The config's data section (every key, as the schema's defaults fill it)."""
    base = {"images": "images", "masks": "masks", "test": "test", "subject_pattern": None, "mask_template": None,
            "image_pattern": None, "merge_masks": False, "cases": False, "image_template": "{case}",
            "class_folders": False, "test_prefix": ""}
    options = {k: v for k, v in folders_options.items() if k in base}
    data = {"raw_dir": str(raw), "format": "folders", "sheet": "sheet.tsv", "channels": ["image"],
            "allow_missing_channels": False, "color": "auto", "max_snapped_share": 0.05,
            "folders": {**base, **options}}
    data.update({k: v for k, v in folders_options.items() if k not in base})
    return data


def _stages(tmp_path, data, classes, *, ignore=None, n_folds=2, stratify=None, size="8x8"):
    """Manifest -> folds -> arrays, as the workflow's scripts call them; their outputs read back."""
    out = tmp_path / "results"
    out.mkdir(exist_ok=True)
    manifest_stage(data, classes, out / "sheet.tsv", out / "train.csv", out / "test.csv", out / "summary.json",
                   threads=1, ignore=ignore)
    folds_stage(out / "train.csv", out / "folds.csv", n_folds, 0, stratify)
    for part in ("train", "test"):
        preprocess_stage(part, out / f"{part}.csv", out / "summary.json", size, out / f"{part}.npz",
                         classes=classes if part == "train" else None, ignore=ignore if part == "train" else None,
                         threads=1)
    return (read_manifest(out / "train.csv"), read_folds(out / "folds.csv"), read_npz(out / "train.npz"),
            json.loads((out / "summary.json").read_text()))


def _binary_study(tmp_path, data, classes, train, folds, arrays) -> dict:
    """A two-class layout is a binary study by default: its tuning (cutoff x minimum area, scored at
    each image's own size against its mask file) and the heatmap run on OOF maps made of the
    arrays' own masks; returns the tuned ``best``."""
    from plexus.io.atomic import write_npz
    from plexus.tasks import task_of
    from plexus.tasks.binary import tune_stage, tuning_stage

    assert task_of({"data": data, "classes": classes, "ignore": [], "regions": {}}) == "binary"
    out = tmp_path / "results"
    oofs = []
    for fold in sorted(folds["fold"].unique()):
        rows = np.flatnonzero(folds["fold"].to_numpy() == fold)
        oofs.append(out / f"fold{fold}.npz")
        write_npz(oofs[-1], image_id=folds["image_id"].to_numpy(str)[rows],
                  prob=arrays["masks"][rows].astype(np.float16))
    best = tune_stage({"m": oofs}, out / "folds.csv", out / "train.csv", classes, [0.3, 0.5], [0, 4],
                      out / "grid.csv", out / "best.json", out / "per_image.csv")
    per_image = read_table(out / "per_image.csv")
    own = {i: int((class_mask(path, classes)[0] == 1).sum()) for i, path in zip(train["image_id"], train["mask"])}
    assert dict(zip(per_image["image_id"], per_image["true_area"].astype(int))) == own
    tuning_stage(out / "grid.csv", out / "best.json", "m", [out / "h.png", out / "h.pdf"],
                 [out / "a.png", out / "a.pdf"])
    assert (out / "h.png").stat().st_size > 0
    return best


def _tree(root) -> dict:
    """Every file under ``root`` with its bytes, to show that nothing there was written."""
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- finding 1: identifiers are text ------------------------------------------------------------

ODD_IDS = ["0000", "007", "1e5", "12.50", "NA", "null", "TRUE", "ñandú_03"]


def test_typed_readers_keep_ids_and_subjects_as_written(tmp_path):
    frame = pd.DataFrame({"image_id": ODD_IDS, "subject": ["01", "1", "001", "1.0", "NA", "", "nan", "x"],
                          "fold": range(8), "dice": [0.5, "", 1, 0, 0, 0, 0, 0]})
    write_csv(tmp_path / "folds.csv", frame)
    folds = read_folds(tmp_path / "folds.csv")
    assert folds["image_id"].tolist() == ODD_IDS
    assert folds["subject"].tolist() == ["01", "1", "001", "1.0", "NA", "", "nan", "x"]
    assert folds["fold"].tolist() == list(range(8))
    table = read_table(tmp_path / "folds.csv")
    assert np.isnan(table["dice"].iloc[1]) and table["dice"].iloc[0] == 0.5  # numbers stay numbers
    # before: pandas inference gave 0, 7, 100000.0, 12.5, NaN, NaN, True
    inferred = pd.read_csv(tmp_path / "folds.csv")["image_id"].tolist()
    assert inferred != ODD_IDS


def test_subjects_01_and_1_are_two_groups_in_a_numeric_order():
    groups, codes = group_codes(np.array(["10", "2", "01", "1", "2"], dtype=object))
    assert groups.tolist() == ["01", "1", "2", "10"]  # numeric, as an inferred column was; ties as text
    assert codes.tolist() == [3, 2, 0, 1, 2]
    assert group_codes(np.array(["b", "a10", "a2"], dtype=object))[0].tolist() == ["a10", "a2", "b"]


# --- findings 2, 3, 5: palette, RGB-equal, GIF/BMP/JPEG masks and images -----------------------


def test_palette_masks_read_as_indices(tmp_path):
    label = _blob(1) + _blob(2, shift=3) * (_blob(1, shift=3) == 0)
    _palette(tmp_path / "m.png", label)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), label)
    # read as an image, the palette still expands to its colours
    assert read_image(tmp_path / "m.png").shape == (H, W, 3)
    index, share = class_mask(tmp_path / "m.png", {"background": 0, "vessel": 1, "nerve": 2})
    np.testing.assert_array_equal(index, label) and share == 0


def test_gray_palette_gif_masks_match_gray_class_values(tmp_path):
    """A 0/255 mask saved as GIF holds indices {0, 1}; with classes {0, 255} its gray levels are meant."""
    label = _blob(1)
    _save(tmp_path / "m.gif", label * 255)
    assert Image.open(tmp_path / "m.gif").mode == "P"
    np.testing.assert_array_equal(class_mask(tmp_path / "m.gif", {"background": 0, "vessel": 255})[0], label)
    np.testing.assert_array_equal(class_mask(tmp_path / "m.gif", {"background": 0, "vessel": 1})[0], label)


def test_rgb_masks_with_equal_channels_read_as_one_and_colour_masks_by_colour(tmp_path):
    label = _blob(1)
    _save(tmp_path / "equal.png", np.repeat((label * 255)[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_mask(tmp_path / "equal.png"), label * 255)
    colour = np.zeros((H, W, 3), np.uint8)
    colour[label == 1] = [255, 0, 0]
    colour[_blob(1, shift=3).astype(bool) & (label == 0)] = [0, 0, 255]
    _save(tmp_path / "colour.png", colour)
    expected = np.where(label == 1, 1, np.where(_blob(1, shift=3).astype(bool), 2, 0))
    classes = {"background": [0, 0, 0], "artery": [255, 0, 0], "vein": [0, 0, 255]}
    np.testing.assert_array_equal(class_mask(tmp_path / "colour.png", classes)[0], expected)
    with pytest.raises(ValueError, match=r"colour\.png: an RGB mask whose channels differ"):
        class_mask(tmp_path / "colour.png", {"background": 0, "artery": 255})
    with pytest.raises(ValueError, match=r"colour\.png: mask values \[0, 0, 255\] are not class values"):
        class_mask(tmp_path / "colour.png", {"background": [0, 0, 0], "artery": [255, 0, 0]})


@pytest.mark.parametrize("suffix", [".gif", ".bmp", ".jpg", ".jpeg"])
def test_gif_bmp_jpeg_images_are_read(tmp_path, suffix):
    gray = np.kron(_gray(3, 4), np.ones((4, 4), np.uint8))  # smooth: JPEG keeps it close
    _save(tmp_path / f"g{suffix}", gray)
    image = read_image(tmp_path / f"g{suffix}")
    assert image.shape == (H, W) and image.dtype == np.uint8
    tolerance = 40 if suffix in (".jpg", ".jpeg") else 0  # lossy: close, not equal
    assert np.abs(image.astype(int) - gray).max() <= tolerance
    rgb = np.kron(_rgb(3, 4), np.ones((4, 4, 1), np.uint8))
    if suffix != ".gif":  # a GIF holds a palette of 256 colours: RGB photos are not kept exactly
        _save(tmp_path / f"c{suffix}", rgb)
        assert read_image(tmp_path / f"c{suffix}").shape == (H, W, 3)


def test_one_bit_bmp_masks_and_multi_frame_gifs(tmp_path):
    label = _blob(1).astype(bool)
    Image.fromarray(label).save(tmp_path / "lesion.bmp")
    np.testing.assert_array_equal(read_mask(tmp_path / "lesion.bmp"), label.astype(np.uint8) * 255)
    frames = [Image.fromarray(_gray()), Image.fromarray(_gray())]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=r"anim\.gif: 2 frames \(an animation\), expected exactly one image"):
        read_image(tmp_path / "anim.gif")


def test_jpeg_masks_are_snapped_and_too_lossy_ones_refused(tmp_path):
    mask = (_blob(1) * 255).astype(np.uint8)
    _save(tmp_path / "m.jpg", np.repeat(mask[..., None], 3, axis=2))
    raw = read_mask(tmp_path / "m.jpg")
    assert not np.isin(raw, [0, 255]).all()  # JPEG rings around the edges
    index, share = class_mask(tmp_path / "m.jpg", {"background": 0, "polyp": 255})
    np.testing.assert_array_equal(index, _blob(1))
    assert share == pytest.approx(float(np.mean(~np.isin(raw, [0, 255]))))
    snapped, moved = snap_to_values(np.array([[0, 100, 127, 200]], np.uint8), [0, 254])
    assert snapped.tolist() == [[0, 0, 0, 254]] and moved == 0.75  # 127 is a tie: the first value


def test_varying_alpha_is_an_error_and_a_constant_one_is_dropped(tmp_path):
    rgb = _rgb()
    _save(tmp_path / "const.png", np.dstack([rgb, np.full((H, W), 255, np.uint8)]))
    np.testing.assert_array_equal(read_image(tmp_path / "const.png", alpha="check"), rgb)
    _save(tmp_path / "vary.png", np.dstack([rgb, _gray()]))
    with pytest.raises(ImageError, match=r"vary\.png: the alpha channel is not constant"):
        read_image(tmp_path / "vary.png", alpha="check")


def test_luminance_and_repetition():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    expected = [[round(255 * 0.299), round(255 * 0.587), round(255 * 0.114), round(10 * .299 + 20 * .587 + 30 * .114)]]
    assert convert_color(rgb, 1).tolist() == expected
    pil = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(pil - convert_color(rgb, 1)).max() <= 1  # Pillow's integer arithmetic
    assert convert_color(rgb[..., 0], 3).shape == (1, 4, 3)


# --- finding 4: a column of gray and RGB images -------------------------------------------------


def _nerve_vessel_set(root, *, n=6):
    """The ultrasound nerve/vessel set: images/0000.png (mostly RGB, a few gray) and masks/0000.png
    (palette, indices {0, 1, 2}), test/images/."""
    for i in range(n):
        stem = f"{i:04d}"
        _save(root / "images" / f"{stem}.png", _gray() if i % 3 == 0 else _rgb())
        label = _blob(1 + i % 2, shift=i)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        _palette(root / "masks" / f"{stem}.png", label)
    for i in range(2):
        _save(root / "test" / "images" / f"{i:04d}.png", _rgb())
    return {"background": 0, "nerve": 1, "vessel": 2}


def test_mixed_gray_and_rgb_names_files_and_the_option(tmp_path):
    raw = tmp_path / "raw"
    classes = _nerve_vessel_set(raw)
    data = _data(raw, test="test/images", test_prefix="test_")
    with pytest.raises(SheetError) as info:
        manifest_stage(data, classes, *(tmp_path / n for n in ("s.tsv", "t.csv", "u.csv", "v.json")), threads=1)
    message = str(info.value)
    assert "column image: mixes gray and RGB images" in message and "data.color: gray" in message
    # gray: 0000 and 0003; RGB: the others, a few named and the rest counted
    assert "gray: image_id 0000 " in message and "image_id 0003" in message and "RGB: image_id 0001 " in message
    assert "images/0000.png" in message and "and 3 more" in message
    assert "in sample sheet the sample sheet" not in message


@pytest.mark.parametrize(("color", "depth"), [("rgb", 3), ("gray", 1)])
def test_nerve_vessel_set_with_a_color_mode(tmp_path, color, depth):
    raw = tmp_path / "raw"
    classes = _nerve_vessel_set(raw)
    before = _tree(raw)
    train, folds, arrays, summary = _stages(tmp_path, _data(raw, test="test/images", test_prefix="test_",
                                                            color=color), classes)
    assert train["image_id"].tolist() == [f"{i:04d}" for i in range(6)]
    assert folds["image_id"].tolist() == train["image_id"].tolist()  # "0000" stays "0000"
    assert arrays["images"].shape == (6, depth, 8, 8) and summary["depths"] == {"image": depth}
    assert list(arrays["image_id"]) == train["image_id"].tolist()
    assert set(np.unique(arrays["masks"])) == {0, 1, 2}
    assert _tree(raw) == before  # the raw folder is never written


# --- finding 6: the ignore value ---------------------------------------------------------------


def test_ignored_pixels_count_in_no_score():
    true = np.array([[0, 1, 1, IGNORE_LABEL], [0, 0, IGNORE_LABEL, IGNORE_LABEL]], np.uint8)
    pred = np.array([[1, 1, 0, 1], [0, 0, 1, 1]], np.uint8)
    # by hand, over the five labelled pixels: tp 1, fp 1 (pixel 0,0), fn 1 (pixel 0,2)
    scores = class_scores(pred, true, 2)
    assert scores["dice"][0] == pytest.approx(2 * 1 / (2 + 2))
    assert scores["true_area"][0] == 2 and scores["pred_area"][0] == 2
    index = to_class_index(np.array([[0, 11, 3]]), [0, 3], "m.png", ignore=[11])
    assert index.tolist() == [[0, IGNORE_LABEL, 1]]


def test_camvid_void_is_ignored_through_the_arrays(tmp_path):
    """CamVid: train/x.png (RGB) and trainannot/x.png (indices 0..10, 11 = void)."""
    raw = tmp_path / "camvid"
    for i in range(4):
        _save(raw / "train" / f"0001TP_{i:06d}.png", _rgb())
        label = _blob(1 + i % 2, shift=i)
        label[:, :3] = 11  # void along the left edge
        _save(raw / "trainannot" / f"0001TP_{i:06d}.png", label)
    classes = {"background": 0, "sky": 1, "road": 2}
    ignore = {"void": 11}
    train, _, arrays, summary = _stages(tmp_path, _data(raw, images="train", masks="trainannot", test=None),
                                        classes, ignore=ignore, size=f"{H}x{W}")
    assert summary["ignore"] == ignore
    assert (arrays["masks"][:, :, :3] == IGNORE_LABEL).all()
    assert set(np.unique(arrays["masks"][:, :, 3:])) <= {0, 1, 2}
    assert train["mask_area"].tolist() == [int((_blob(1, shift=i)[:, 3:] > 0).sum()) for i in range(4)]
    with pytest.raises(SheetError, match="mask values 11 are not class values"):
        manifest_stage(_data(raw, images="train", masks="trainannot", test=None), classes,
                       *(tmp_path / n for n in ("s.tsv", "t.csv", "u.csv", "v.json")), threads=1)


# --- the layouts public datasets use -----------------------------------------------------------


def test_drive_masks_in_another_folder_under_another_name(tmp_path):
    """DRIVE: training/images/21_training.tif with training/1st_manual/21_manual1.gif ({0, 255})."""
    raw = tmp_path / "DRIVE"
    for i in (21, 22, 23, 24):
        (raw / "training/images").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(raw / f"training/images/{i}_training.tif", _rgb(), photometric="rgb")
        _save(raw / f"training/1st_manual/{i}_manual1.gif", _blob(1, shift=i) * 255)
        _save(raw / f"training/mask/{i}_training_mask.gif", np.full((H, W), 255, np.uint8))  # the FOV: unused
    data = _data(raw, images="training/images", masks="training", test=None,
                 image_pattern=r"(?P<id>\d+)_training", mask_template="1st_manual/{id}_manual1")
    train, folds, arrays, _ = _stages(tmp_path, data, {"background": 0, "vessel": 255})
    _binary_study(tmp_path, data, {"background": 0, "vessel": 255}, train, folds, arrays)
    assert train["image_id"].tolist() == [f"{i}_training" for i in (21, 22, 23, 24)]
    assert [p.split("/")[-1] for p in train["mask"]] == [f"{i}_manual1.gif" for i in (21, 22, 23, 24)]
    assert arrays["masks"].max() == 1 and len(folds) == 4


def test_ph2_one_folder_per_case_with_bmp_files(tmp_path):
    """PH2: 'PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp' and IMD002_lesion/IMD002_lesion.bmp."""
    raw = tmp_path / "PH2Dataset"
    root = raw / "PH2 Dataset images"
    for i, case in enumerate(["IMD002", "IMD003", "IMD004", "IMD006"]):
        _save(root / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp", _rgb())
        path = root / case / f"{case}_lesion" / f"{case}_lesion.bmp"
        path.parent.mkdir(parents=True)
        lesion = _blob(1, shift=i)
        Image.fromarray(lesion.astype(bool)).save(path) if i else _save(path, np.dstack([lesion * 255] * 3))
    data = _data(raw, images="PH2 Dataset images", cases=True, test=None,
                 image_template="{case}_Dermoscopic_Image/{case}", mask_template="{case}_lesion/{case}_lesion")
    train, folds, arrays, _ = _stages(tmp_path, data, {"background": 0, "lesion": 255}, size=f"{H}x{W}")
    best = _binary_study(tmp_path, data, {"background": 0, "lesion": 255}, train, folds, arrays)
    assert best["score"] == 1.0  # the masks themselves, at the images' size: a perfect study
    assert train["image_id"].tolist() == ["IMD002", "IMD003", "IMD004", "IMD006"]
    for i in range(4):
        np.testing.assert_array_equal(arrays["masks"][i], _blob(1, shift=i))


def test_hc18_one_folder_rgb_annotations_and_subjects_from_a_regex(tmp_path):
    """HC18: 000_HC.png (gray) beside 000_HC_Annotation.png (RGB, channels equal); 010_2HC is 010's."""
    raw = tmp_path / "HC18"
    stems = ["000_HC", "001_HC", "010_HC", "010_2HC", "011_HC", "012_HC"]
    for i, stem in enumerate(stems):
        _save(raw / "training_set" / f"{stem}.png", _gray())
        _save(raw / "training_set" / f"{stem}_Annotation.png", np.dstack([_blob(1, shift=i) * 255] * 3))
    data = _data(raw, images="training_set", masks="training_set", test=None, mask_template="{stem}_Annotation",
                 subject_pattern=r"(?P<subject>\d+)_\d?HC")
    train, folds, arrays, _ = _stages(tmp_path, data, {"background": 0, "head": 255})
    _binary_study(tmp_path, data, {"background": 0, "head": 255}, train, folds, arrays)
    assert sorted(train["image_id"]) == sorted(stems)
    assert train.set_index("image_id").loc[["010_HC", "010_2HC"], "subject"].tolist() == ["010", "010"]
    fold_of = folds.set_index("image_id")["fold"]
    assert fold_of["010_HC"] == fold_of["010_2HC"]


def test_busi_class_folders_spaces_and_several_masks(tmp_path):
    """BUSI: benign/benign (1).png with 'benign (1)_mask.png', sometimes also 'benign (4)_mask_1.png'."""
    raw = tmp_path / "Dataset_BUSI_with_GT"
    for category in ("benign", "malignant", "normal"):
        for i in range(1, 5):
            stem = f"{category} ({i})"
            _save(raw / category / f"{stem}.png", _gray())
            mask = _blob(1, shift=i) * 255 if category != "normal" else np.zeros((H, W), np.uint8)
            _save(raw / category / f"{stem}_mask.png", mask)
    second = np.zeros((H, W), np.uint8)
    second[0:2, 0:3] = 255
    _save(raw / "benign" / "benign (4)_mask_1.png", second)
    data = _data(raw, images=".", masks=None, test=None, class_folders=True, mask_template="{stem}_mask",
                 merge_masks=True)
    train, folds, arrays, _ = _stages(tmp_path, data, {"background": 0, "tumour": 255}, n_folds=2,
                                      stratify="category", size=f"{H}x{W}")
    _binary_study(tmp_path, data, {"background": 0, "tumour": 255}, train, folds, arrays)
    assert len(train) == 12 and "benign_4" in set(train["image_id"])
    assert train.set_index("image_id")["category"].to_dict()["malignant_2"] == "malignant"
    row = train["image_id"].tolist().index("benign_4")
    np.testing.assert_array_equal(arrays["masks"][row], np.maximum(_blob(1, shift=4), second // 255))
    # each fold holds two images of each category (stratified on the class folder)
    counts = folds.assign(category=train["category"]).groupby(["fold", "category"]).size()
    assert set(counts.tolist()) == {2}


def test_isic_jpeg_images_with_png_segmentations_in_one_folder(tmp_path):
    raw = tmp_path / "ISIC"
    for i in range(4):
        _save(raw / "data" / f"ISIC_{i:07d}.jpg", np.kron(_rgb(3, 4), np.ones((4, 4, 1), np.uint8)))
        _save(raw / "data" / f"ISIC_{i:07d}_segmentation.png", _blob(1, shift=i) * 255)
    data = _data(raw, images="data", masks="data", test=None, mask_template="{stem}_segmentation")
    train, folds, arrays, _ = _stages(tmp_path, data, {"background": 0, "lesion": 255})
    _binary_study(tmp_path, data, {"background": 0, "lesion": 255}, train, folds, arrays)
    assert train["image_id"].tolist() == [f"ISIC_{i:07d}" for i in range(4)]
    assert arrays["images"].shape[1] == 3


def test_kvasir_jpeg_masks_snapped_or_refused(tmp_path, capsys):
    raw = tmp_path / "Kvasir-SEG"
    for i in range(4):
        _save(raw / "images" / f"cju{i}.jpg", _rgb())
        (raw / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.dstack([_blob(1, shift=i) * 255] * 3)).save(raw / "masks" / f"cju{i}.jpg", quality=100)
    train, folds, arrays, summary = _stages(tmp_path, _data(raw, test=None), {"background": 0, "polyp": 255},
                                            size=f"{H}x{W}")
    assert _binary_study(tmp_path, _data(raw, test=None), {"background": 0, "polyp": 255}, train, folds,
                         arrays)["score"] == 1.0  # the snapped masks are the truth the study scores against
    assert summary["snapped_masks"] >= 1
    assert f"snapped {summary['snapped_masks']} lossy mask(s)" in capsys.readouterr().out
    for i in range(4):
        np.testing.assert_array_equal(arrays["masks"][i], _blob(1, shift=i))
    strict = _data(raw, test=None, max_snapped_share=0.0)
    with pytest.raises(SheetError, match=r"cju0\.jpg: snapping this lossy mask .* data\.max_snapped_share"):
        manifest_stage(strict, {"background": 0, "polyp": 255},
                       *(tmp_path / n for n in ("s.tsv", "t.csv", "u.csv", "v.json")), threads=1)


def test_layout_problems_name_the_files(tmp_path):
    raw = tmp_path / "raw"
    _save(raw / "images" / "a.png", _gray())
    _save(raw / "images" / "a_mask.png", _blob(1) * 255)
    _save(raw / "images" / "b.png", _gray())
    with pytest.raises(LayoutError) as info:
        folders(raw, images="images", masks="images", mask_template="{stem}_mask")
    assert info.value.problems == [f"{raw / 'images' / 'b.png'}: image without a mask (expected "
                                   f"{raw / 'images' / 'b_mask'}.png; any image type also does)"]
    with pytest.raises(ValueError, match="mask_template: images and masks share a folder"):
        folders(raw, images="images", masks="images")
    with pytest.raises(LayoutError, match=r"does not match image_pattern"):
        folders(raw, images="images", masks="images", mask_template="{stem}_mask", image_pattern=r"\d+")
    assert safe_id("benign (1)") == "benign_1" and safe_id("ñandú 3") == "ñandú_3"
    with pytest.raises(ValueError, match=r"mask_template: '\{name\}_mask' names \['name'\]"):
        folders(raw, images="images", masks="images", mask_template="{name}_mask")
    case = raw / "cases" / "IMD009"
    _save(case / "IMD009_Dermoscopic_Image" / "IMD009.bmp", _rgb())
    with pytest.raises(LayoutError) as info:
        folders(raw, images="cases", cases=True, image_template="{case}_Dermoscopic_Image/{case}",
                mask_template="{case}_lesion/{case}_lesion")
    assert info.value.problems == [f"{case / 'IMD009_Dermoscopic_Image' / 'IMD009.bmp'}: image without a mask "
                                   f"(expected {case / 'IMD009_lesion' / 'IMD009_lesion'}.png; any image type "
                                   "also does)"]


def test_sheet_with_odd_ids_and_unicode_round_trips(tmp_path):
    rows = ["image_id\tsubject\tsplit\timage\tmask"]
    for i, image_id in enumerate(ODD_IDS):
        _save(tmp_path / f"i{i}.png", _gray())
        _palette(tmp_path / f"m{i}.png", _blob(1, shift=i))
        rows.append(f"{image_id}\t{['01', '1'][i % 2]}\ttrain\ti{i}.png\tm{i}.png")
    (tmp_path / "sheet.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    sheet = read_sheet(tmp_path / "sheet.tsv")
    assert sheet["image_id"].tolist() == ODD_IDS
    train, _, _ = build_manifest(sheet, channels=["image"], classes={"background": 0, "nerve": 1}, threads=1)
    assert train["subject"].nunique() == 2


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_colour_label_maps_round_trip(tmp_path, suffix):
    classes = {"background": [0, 0, 0], "artery": [255, 0, 0], "vein": [0, 0, 255]}
    label = _blob(1) + _blob(2, shift=3) * (_blob(1, shift=3) == 0) * (_blob(1) == 0)
    write_label_map(tmp_path / f"l{suffix}", label, list(classes.values()))
    written = read_image(tmp_path / f"l{suffix}")
    assert written.shape == (H, W, 3) and written[label == 1].tolist() == [[255, 0, 0]] * int((label == 1).sum())
    np.testing.assert_array_equal(class_mask(tmp_path / f"l{suffix}", classes)[0], label)
