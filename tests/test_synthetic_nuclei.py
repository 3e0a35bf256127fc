"""The synthetic DSB2018 stand-in: layout, determinism and the properties the nuclei task relies on."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from plexus.data.synthetic_nuclei import generate_nuclei

SIZES = ((48, 48), (40, 64), (64, 40))


@pytest.fixture(scope="module")
def nuclei(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuclei")
    summary = generate_nuclei(root, n_images=12, n_test=4, sizes=SIZES, seed=3)
    return root, summary


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _masks(sample):
    return [np.asarray(Image.open(p)) for p in sorted((sample / "masks").iterdir())]


def test_layout(nuclei):
    root, summary = nuclei
    train, test = sorted((root / "stage1_train").iterdir()), sorted((root / "stage1_test").iterdir())
    assert len(train) == 12 and len(test) == 4
    assert sorted(r["image_id"] for r in summary["stage1_train"]) == [p.name for p in train]
    for sample in train + test:
        assert re.fullmatch(r"[0-9a-f]{64}", sample.name)
        assert [p.name for p in (sample / "images").iterdir()] == [f"{sample.name}.png"]
        image = Image.open(sample / "images" / f"{sample.name}.png")
        assert image.mode in ("RGB", "RGBA")
        assert (image.height, image.width) in SIZES
    for sample in test:
        assert not (sample / "masks").exists()
    for sample in train:
        names = [p.name for p in (sample / "masks").iterdir()]
        assert names and all(re.fullmatch(r"[0-9a-f]{64}\.png", n) for n in names)


def test_masks_are_binary_disjoint_and_non_empty(nuclei):
    root, summary = nuclei
    for record in summary["stage1_train"]:
        sample = root / "stage1_train" / record["image_id"]
        masks = _masks(sample)
        assert len(masks) == record["nuclei"] > 0
        stack = np.stack(masks)
        assert stack.dtype == np.uint8 and stack.shape[1:] == (record["height"], record["width"])
        assert set(np.unique(stack).tolist()) == {0, 255}
        assert (stack > 0).sum(axis=(1, 2)).min() >= 12
        assert (stack > 0).sum(axis=0).max() == 1  # no pixel in two masks


def test_polarities_sizes_and_channels_vary(nuclei):
    root, summary = nuclei
    records = summary["stage1_train"]
    assert {r["polarity"] for r in records} == {"fluorescence", "he"}
    assert {(r["height"], r["width"]) for r in records} == set(SIZES)
    assert {r["channels"] for r in records + summary["stage1_test"]} == {3, 4}
    # the polarity is visible: H&E-like images are light around dark nuclei, fluorescence the reverse
    for r in records:
        sample = root / "stage1_train" / r["image_id"]
        gray = np.asarray(Image.open(sample / "images" / f"{r['image_id']}.png").convert("L"), dtype=float)
        inside = np.stack(_masks(sample)).max(axis=0) > 0
        darker_nuclei = gray[inside].mean() < gray[~inside].mean()
        assert darker_nuclei == (r["polarity"] == "he")


def test_touching_pairs_present(nuclei):
    root, summary = nuclei
    touching = 0
    for record in summary["stage1_train"]:
        stack = np.stack(_masks(root / "stage1_train" / record["image_id"])) > 0
        labels = (stack * np.arange(1, len(stack) + 1)[:, None, None]).max(axis=0)
        # different nuclei side by side (right or down neighbour)
        pairs = set()
        for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
            hit = (a > 0) & (b > 0) & (a != b)
            pairs |= {tuple(sorted(p)) for p in zip(a[hit].tolist(), b[hit].tolist())}
        assert record["touching_pairs"] >= len(pairs)
        touching += len(pairs)
    assert touching >= 10


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path):
    kwargs = dict(n_images=3, n_test=1, sizes=SIZES)
    generate_nuclei(tmp_path / "a", seed=5, **kwargs)
    generate_nuclei(tmp_path / "b", seed=5, **kwargs)
    generate_nuclei(tmp_path / "c", seed=6, **kwargs)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_refuses_a_non_empty_folder(tmp_path):
    generate_nuclei(tmp_path, n_images=1, n_test=0, sizes=SIZES)
    with pytest.raises(FileExistsError):
        generate_nuclei(tmp_path, n_images=1, n_test=0, sizes=SIZES)
