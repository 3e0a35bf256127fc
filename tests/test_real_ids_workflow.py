"""The generic DAG on a user's sheet with awkward identifiers and palette masks (issue #19).

Ids such as ``0000``, ``1e5``, ``NA`` or ``TRUE`` used to be read back as numbers or missing values
by the stages after the manifest, so that training refused the arrays. Here every output that names
an image must spell its id exactly as the sheet does, subjects ``01`` and ``1`` must stay two CV
groups, palette indices must be the labels and the ignored index must never be predicted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.io.contracts import read_folds, read_npz, read_per_image
from workflow_helpers import make_workdir, read_config, snakemake, write_config

pytestmark = pytest.mark.workflow

TRAIN_IDS = ["0000", "007", "1e5", "12.50", "NA", "null", "TRUE", "ñandú_03", "0001", "0002", "3.0", "None"]
SUBJECTS = ["01", "1", "01", "1", "02", "2", "02", "2", "03", "3", "03", "3"]
TEST_IDS = ["0000_t", "1E6", "nan"]
rng = np.random.default_rng(5)


def _label(i: int) -> np.ndarray:
    label = np.zeros((20, 24), np.uint8)
    label[4 + i % 5:12 + i % 5, 5:14] = 1 + i % 2
    label[:, :2] = 3  # void
    return label


@pytest.fixture(scope="module")
def ids_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("ids") / "plexus", "tiny_ids.yaml")
    raw = workdir / "results/raw/ids"
    (raw / "img").mkdir(parents=True)
    rows = ["image_id\tsubject\tsplit\timage\tmask"]
    for i, (image_id, subject) in enumerate(zip(TRAIN_IDS, SUBJECTS)):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(raw / f"img/{i}.png")
        mask = Image.fromarray(_label(i), mode="P")
        mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 80, 80, 80])
        mask.save(raw / f"img/{i}_mask.png")
        rows.append(f"{image_id}\t{subject}\ttrain\timg/{i}.png\timg/{i}_mask.png")
    for i, image_id in enumerate(TEST_IDS):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(raw / f"img/t{i}.png")
        rows.append(f"{image_id}\t\ttest\timg/t{i}.png\t")
    (raw / "sheet.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_every_output_spells_the_ids_as_the_sheet(ids_run):
    results = ids_run / "results"
    folds = read_folds(results / "splits/folds.csv")
    assert folds["image_id"].tolist() == TRAIN_IDS
    assert [str(i) for i in read_npz(results / "preprocessed/16x16/train.npz")["image_id"]] == TRAIN_IDS
    assert [str(i) for i in read_npz(results / "preprocessed/16x16/test.npz")["image_id"]] == TEST_IDS
    per_image = read_per_image(results / "tuning/main/per_image.csv")
    assert set(per_image["image_id"]) == set(TRAIN_IDS)
    submission = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False)
    assert set(submission["image_id"]) == set(TEST_IDS)
    assert sorted(p.stem for p in (results / "labelmaps/main").glob("*.png")) == sorted(TEST_IDS)


def test_subjects_01_and_1_stay_two_groups(ids_run):
    folds = read_folds(ids_run / "results/splits/folds.csv")
    assert folds["subject"].tolist() == SUBJECTS
    assert folds["subject"].nunique() == 6
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()  # a subject in one fold


def test_palette_indices_are_the_labels_and_void_is_never_predicted(ids_run):
    results = ids_run / "results"
    with np.load(results / "preprocessed/16x16/train.npz") as data:
        assert list(data["classes"]) == ["background", "nerve", "vessel"]
        assert set(np.unique(data["masks"])) == {0, 1, 2, 255}
    for path in (results / "labelmaps/main").glob("*.png"):
        label = np.asarray(Image.open(path))
        assert label.shape == (20, 24) and set(np.unique(label)) <= {0, 1, 2}
    table = pd.read_csv(results / "tables/summary.csv")
    assert set(table["class"]) == {"nerve", "vessel"}


@pytest.mark.parametrize("layout", ["ph2", "busi"])
def test_folder_layouts_through_the_workflow_to_the_arrays(tmp_path, layout):
    """The README's config lines for two layouts, run by Snakemake up to the folds and the arrays:
    one folder per case with no masks folder and no test folder (PH2), images and masks side by
    side in class folders with spaces in their names (BUSI)."""
    workdir = make_workdir(tmp_path / "plexus", "tiny_ids.yaml")
    raw = workdir / "results/raw/ids"
    label = _label(0)
    label[label == 3] = 0
    if layout == "ph2":
        folders = {"images": "PH2 Dataset images", "cases": True, "test": None,
                   "image_template": "{case}_Dermoscopic_Image/{case}", "mask_template": "{case}_lesion/{case}_lesion"}
        for i in range(4):
            case = raw / "PH2 Dataset images" / f"IMD00{i}"
            for sub, array in ((f"IMD00{i}_Dermoscopic_Image/IMD00{i}.bmp", rng.integers(0, 256, (20, 24, 3),
                                                                                         dtype=np.uint8)),
                               (f"IMD00{i}_lesion/IMD00{i}_lesion.bmp", (label > 0) * np.uint8(255))):
                (case / sub).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(case / sub)
        expected = [f"IMD00{i}" for i in range(4)]
    else:
        folders = {"images": ".", "masks": None, "test": None, "class_folders": True, "mask_template": "{stem}_mask"}
        for category in ("benign", "malignant"):
            (raw / category).mkdir(parents=True)
            for i in (1, 2):
                Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(raw / category /
                                                                                      f"{category} ({i}).png")
                Image.fromarray((label > 0) * np.uint8(255)).save(raw / category / f"{category} ({i})_mask.png")
        expected = ["benign_1", "benign_2", "malignant_1", "malignant_2"]
    config = read_config(workdir)
    config["data"] = {"format": "folders", "raw_dir": "results/raw/ids", "folders": folders}
    config["classes"], config["ignore"] = {"background": 0, "lesion": 255}, []
    config["tuning"]["min_areas"] = config["tuning"].pop("min_sizes")  # two classes: a binary study's minimum
    config["cv"]["stratify"] = "category" if layout == "busi" else None
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", "results/splits/folds.csv", "results/preprocessed/16x16/train.npz")
    assert read_folds(workdir / "results/splits/folds.csv")["image_id"].tolist() == expected
    with np.load(workdir / "results/preprocessed/16x16/train.npz") as data:
        assert data["masks"].max() == 1 and data["images"].shape[0] == 4
