"""Tiny replicas of published 3-D brain-tumour layouts, for the tests of the volume readers (no tests here).

Each writer puts a few small, random-but-plausible cases (a head: an ellipsoid of nonzero
intensities with background exactly 0 around it; a nested tumour blob in the label volume)
under ``root`` in the published folder layout, file names, formats and label encodings:

* :func:`write_brats2021`: the BraTS 2021 challenge (RSNA-ASNR-MICCAI), one folder per case;
* :func:`write_decathlon_brain`: the Medical Segmentation Decathlon's ``Task01_BrainTumour``
  (4-D images, its ``dataset.json``);
* :func:`write_mha_cases`: MetaImage (``.mha``) image and label pairs with a non-identity
  direction, written by SimpleITK (as grand-challenge.org style datasets come).

The label blob is a ball of three nested shells (outer: edema; middle: enhancing rim or
non-enhancing tumour; inner: necrosis or enhancing), so every label value of the layout occurs
in every training case. Draws come from ``numpy.random.default_rng([seed, case index])``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

__all__ = ["BRATS2021_LABELS", "BRATS2021_MODALITIES", "DECATHLON_BRAIN_LABELS", "DECATHLON_BRAIN_MODALITIES",
           "write_brats2021", "write_decathlon_brain", "write_mha_cases"]

BRATS2021_MODALITIES = ("flair", "t1", "t1ce", "t2")
BRATS2021_LABELS = {0: "background", 1: "necrotic tumour core", 2: "peritumoral edema", 4: "enhancing tumour"}
DECATHLON_BRAIN_MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
DECATHLON_BRAIN_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
# mean intensity of each modality's brain, and the tumour's (outer, middle, inner shell) levels
_LEVELS = {"flair": (400, 800, 650, 600), "t1": (500, 420, 520, 250), "t1ce": (520, 440, 950, 260),
           "t2": (450, 750, 600, 800)}


def _phantom(rng: np.random.Generator, shape: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(head mask, [outer, middle, inner] nested tumour shells)`` of one case, all boolean."""
    grid = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    centre = [(n - 1) / 2 + rng.uniform(-0.5, 0.5) for n in shape]
    rho = np.sqrt(sum(((g - c) / (0.45 * n)) ** 2 for g, c, n in zip(grid, centre, shape)))
    head = rho < 1
    spot = [c + rng.uniform(-0.08, 0.08) * n for c, n in zip(centre, shape)]
    radii = np.array([0.30 * n for n in shape]) * rng.uniform(0.9, 1.1)
    tumour = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, spot, radii)))
    shells = [(tumour < 1) & head, (tumour < 0.65) & head, (tumour < 0.3) & head]
    shells[2] |= tumour == tumour.min()  # the centre voxel: the inner shell is never empty
    shells[1] |= shells[2]
    shells[0] |= shells[1]
    return head, shells


def _volume(rng: np.random.Generator, head: np.ndarray, shells: list[np.ndarray],
            levels: Sequence[float]) -> np.ndarray:
    """A modality: ``levels`` (brain, outer, middle, inner shell) plus noise inside the head, 0 outside."""
    out = np.full(head.shape, float(levels[0]))
    for shell, level in zip(shells, levels[1:]):
        out[shell] = level
    out = out * rng.uniform(0.9, 1.1) + rng.normal(0, 20, head.shape)
    return np.where(head, np.maximum(out, 1), 0).astype(np.float32)


def _labels(shells: list[np.ndarray], values: Sequence[int]) -> np.ndarray:
    out = np.zeros(shells[0].shape, np.uint8)
    for shell, value in zip(shells, values):
        out[shell] = value
    return out


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> str:
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return str(path)


def write_brats2021(root, case_ids: Sequence[str] = ("BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003"),
                    shape: Sequence[int] = (16, 16, 8), *, affine: np.ndarray | None = None,
                    seed: int = 0) -> list[str]:
    """BraTS 2021 training data: ``root/{case}/{case}_{flair,t1,t1ce,t2,seg}.nii.gz``.

    Images float32 (``shape``), 0 outside the head; ``seg`` uint8 with labels {0, 1, 2, 4}
    (:data:`BRATS2021_LABELS`: necrotic core, edema, enhancing; no 3), every one present. The
    affine is RAS, 1 mm, identity-like (the identity plus an origin) unless ``affine`` is given.
    Returns the written paths, case by case, modalities in :data:`BRATS2021_MODALITIES` order then
    ``seg``.
    """
    root = Path(root)
    if affine is None:
        affine = np.eye(4)
        affine[:3, 3] = [-(n - 1) / 2 for n in shape]
    written = []
    for index, case in enumerate(case_ids):
        rng = np.random.default_rng([seed, index])
        head, shells = _phantom(rng, shape)
        for name in BRATS2021_MODALITIES:
            volume = _volume(rng, head, shells, _LEVELS[name])
            written.append(_save(volume, affine, root / case / f"{case}_{name}.nii.gz"))
        written.append(_save(_labels(shells, (2, 4, 1)), affine, root / case / f"{case}_seg.nii.gz"))
    return written


def write_decathlon_brain(root, train_ids: Sequence[str] = ("BRATS_001", "BRATS_002", "BRATS_003"),
                          test_ids: Sequence[str] = ("BRATS_101",), shape: Sequence[int] = (16, 16, 8), *,
                          seed: int = 0) -> dict:
    """The Decathlon's Task01_BrainTumour: ``root/imagesTr/{id}.nii.gz`` (4-D: ``shape`` x 4 modalities,
    float32, in :data:`DECATHLON_BRAIN_MODALITIES` order FLAIR, T1w, t1gd, T2w), ``root/labelsTr/{id}.nii.gz``
    (uint8, labels {0, 1, 2, 3}: :data:`DECATHLON_BRAIN_LABELS`, every one present),
    ``root/imagesTs/{id}.nii.gz`` (4-D, no label) and ``root/dataset.json`` with the real file's keys
    (name, description, reference, licence, release, tensorImageSize, modality, labels, numTraining,
    numTest, training: ``[{"image": "./imagesTr/{id}.nii.gz", "label": "./labelsTr/{id}.nii.gz"}]``,
    test: ``["./imagesTs/{id}.nii.gz"]``). RAS 1 mm affine.

    Returns ``{"dataset_json": path, "images_tr": [...], "labels_tr": [...], "images_ts": [...]}``.
    """
    root = Path(root)
    affine = np.eye(4)
    written: dict = {"images_tr": [], "labels_tr": [], "images_ts": []}
    for index, case in enumerate([*train_ids, *test_ids]):
        rng = np.random.default_rng([seed, index])
        head, shells = _phantom(rng, shape)
        image = np.stack([_volume(rng, head, shells, _LEVELS[name]) for name in ("flair", "t1", "t1ce", "t2")],
                         axis=-1)
        if index < len(train_ids):
            written["images_tr"].append(_save(image, affine, root / "imagesTr" / f"{case}.nii.gz"))
            written["labels_tr"].append(_save(_labels(shells, (1, 2, 3)), affine, root / "labelsTr" / f"{case}.nii.gz"))
        else:
            written["images_ts"].append(_save(image, affine, root / "imagesTs" / f"{case}.nii.gz"))
    dataset = {
        "name": "BRATS",
        "description": "Gliomas segmentation tumour and oedema in on brain images",
        "reference": "https://www.med.upenn.edu/sbia/brats2017.html",
        "licence": "CC-BY-SA 4.0",
        "release": "2.0 04/05/2018",
        "tensorImageSize": "4D",
        "modality": dict(DECATHLON_BRAIN_MODALITIES),
        "labels": dict(DECATHLON_BRAIN_LABELS),
        "numTraining": len(train_ids),
        "numTest": len(test_ids),
        "training": [{"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
                     for case in train_ids],
        "test": [f"./imagesTs/{case}.nii.gz" for case in test_ids],
    }
    (root / "dataset.json").write_text(json.dumps(dataset, indent=4))
    written["dataset_json"] = str(root / "dataset.json")
    return written


#: the MetaImage replica's geometry: a 90-degree turn about z (not the identity), anisotropic spacing
MHA_DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
MHA_SPACING = (0.9, 0.9, 3.0)
MHA_ORIGIN = (12.5, -40.0, -20.0)


def write_mha_cases(root, case_ids: Sequence[str] = ("case_001", "case_002"), shape: Sequence[int] = (16, 16, 8),
                    *, seed: int = 0) -> dict[str, dict[str, str]]:
    """MetaImage pairs: ``root/{case}.mha`` (float32 image) and ``root/{case}_seg.mha`` (uint8 labels
    {0, 1, 2, 3}), compressed, written by SimpleITK with size ``shape`` (ITK index order x, y, z: the
    numpy array is z, y, x), :data:`MHA_SPACING`, :data:`MHA_ORIGIN` and the non-identity
    :data:`MHA_DIRECTION`, the same for image and label.

    Returns ``{case: {"image": path, "label": path}}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for index, case in enumerate(case_ids):
        rng = np.random.default_rng([seed, index])
        head, shells = _phantom(rng, shape)
        arrays = {"image": _volume(rng, head, shells, _LEVELS["flair"]), "label": _labels(shells, (1, 2, 3))}
        written[case] = {}
        for kind, array in arrays.items():
            image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
            image.SetSpacing(MHA_SPACING)
            image.SetOrigin(MHA_ORIGIN)
            image.SetDirection(MHA_DIRECTION)
            path = root / (f"{case}.mha" if kind == "image" else f"{case}_seg.mha")
            sitk.WriteImage(image, str(path), useCompression=True)
            written[case][kind] = str(path)
    return written
