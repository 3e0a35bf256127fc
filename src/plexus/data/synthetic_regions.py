"""A seeded synthetic brain-tumour-like dataset with nested regions (BraTS-style), described by a sample sheet.

:func:`generate_regions` writes a small, fully deterministic dataset for the ``regions``
task: four co-registered MRI-like channels per image and a label map of four tumour
sub-regions whose unions are the evaluated regions (:data:`REGIONS`):

* ``complete`` (whole tumour): every tumour label;
* ``core`` (tumour core): necrosis, non-enhancing tumour and enhancing tumour;
* ``enhancing``: the enhancing tumour alone.

Files under ``raw_dir``:

``{channel}/{image_id}.png`` for ``t1``, ``t1c``, ``t2``, ``flair`` (:data:`CHANNELS`)
    8-bit grayscale, 64 x 64 by default. Each subject has one head (a hard-edged ellipse of
    scalp around a dark skull and a brain of gray and white matter with a gyral texture,
    cerebrospinal fluid in two ventricles and the sulci) and one bias field per channel,
    shared by all of its images (no shift between them), so the head outline of a subject is
    identical on all its images; each image has its own gain, noise and lesions.
    :data:`TISSUE_LEVELS` holds the mean level of each tissue, :data:`LESION_LEVELS` of each
    tumour label on each channel (each drawn within +-10% per image). As in the BraTS
    description: edema is bright on flair and t2, faint (slightly dark) on t1 and t1c; the
    enhancing rim is bright on t1c only; necrosis is dark on t1 and t1c, bright on t2;
    non-enhancing tumour is moderately bright on t2 and flair. T1c also shows a thin
    enhancing meningeal line at the brain's edge and two or three bright vessel dots per
    subject, so a threshold on t1c alone does not give the enhancing tumour.
``masks/{image_id}.png`` (train rows)
    8-bit label map, gray value = label, :data:`REGION_CLASSES`: 0 background,
    1 necrosis, 2 edema, 3 non_enhancing, 4 enhancing.
``masks_rater2/{image_id}.png`` (``rater2_share`` of the train rows)
    a second expert's label map of the same image: the complete and core regions are each
    locally dilated and eroded by 1-2 pixels (a smooth random field decides where they grow
    and where they shrink; the core clipped to the complete region so the nesting stays
    valid), the enhancing rim follows the moved core outline, its inner edge (the necrosis and
    non-enhancing inside) moved by 1 pixel; pixels newly in the core take the label of the
    nearest truth necrosis or non-enhancing pixel. About one rated lesion image in eight
    (:data:`OMISSION_SHARE`) also misses the smallest of several lesions or, with one lesion,
    a label (the enhancing rim called non-enhancing, or without a rim the non-enhancing
    patches called necrosis).
``sheet.tsv``
    columns ``image_id, subject, split, t1, t1c, t2, flair, mask, mask_rater2``, paths
    relative to ``raw_dir``; train rows (ids ``s03_004``) then test rows (``t01_002``,
    empty ``mask`` and ``mask_rater2``). ``mask_rater2`` is an extra column: the frame
    returned (as :func:`plexus.data.sheet.read_sheet` reads it) keeps it relative to
    ``raw_dir``, the channel and mask columns are absolute.
``synthetic_summary.json``
    the arguments, classes and regions, the image counts, lesion and empty image counts,
    missing channel counts, the per-class pixel fractions and image shares of the train
    set, and the second rater's counts (rated, differing from the truth, omissions, mean
    Dice of each region against the truth).

Lesions: ``empty_share`` of the images of each split (exactly ``round(share * n)``) show
no lesion, the others one (sometimes two) lesions of random size, position, shape and
make-up: a core (an irregular ellipse) inside a larger irregular edema halo that
surrounds it everywhere by at least two pixels; most cores of a fair size are
high-grade-like (an enhancing rim 1.5-3 px wide around a necrotic centre, with some
non-enhancing patches inside the rim), the rest low-grade-like (non-enhancing, sometimes a small
enhancing focus). ``missing_share`` of the rows of each split (exactly
``round(share * n)``) lack one channel drawn at random (empty cell, no file), never more.

Random draws come from ``numpy.random.default_rng([seed, 3, split, subject, image, ...])``
(:mod:`plexus.data.synthetic_semantic` uses datasets 1 and 2), so a rerun with the same
arguments writes the same bytes. The folder rules (a new or empty folder, or a previous
synthetic output, whose files are removed first) are those of
:mod:`plexus.data.synthetic_semantic`, whose helpers this module uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from plexus.data.synthetic_semantic import (
    _ID_FILE,
    MASK_FOLDER,
    SHEET_NAME,
    SUMMARY_NAME,
    _absent,
    _check_counts,
    _check_seed,
    _check_sizes,
    _class_stats,
    _count_classes,
    _ellipse,
    _finish,
    _id,
    _prepare,
    _rng,
    _sigmoid,
    _smooth,
    _splits,
    _write_png,
)

__all__ = [
    "CHANNELS", "LESION_LEVELS", "RATER2_FOLDER", "REGIONS", "REGION_CLASSES", "SHEET_NAME", "SUMMARY_NAME",
    "TISSUE_LEVELS", "generate_regions", "region_masks",
]

REGION_CLASSES = {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
REGIONS = {"complete": ["necrosis", "edema", "non_enhancing", "enhancing"],
           "core": ["necrosis", "non_enhancing", "enhancing"],
           "enhancing": ["enhancing"]}
CHANNELS = ("t1", "t1c", "t2", "flair")
RATER2_FOLDER = "masks_rater2"
OMISSION_SHARE = 1 / 8  # share of the rated lesion images where rater 2 also misses a lesion or a label

_REGIONS = 3  # dataset code in the RNG seeds (synthetic_semantic uses 1 and 2)
_TRAIN, _TEST = 0, 1

#: Mean 8-bit level of each tissue on each channel (before bias field, gain and noise).
TISSUE_LEVELS = {
    "t1": {"air": 0.0, "scalp": 170.0, "skull": 25.0, "gm": 100.0, "wm": 145.0, "csf": 35.0},
    "t1c": {"air": 0.0, "scalp": 175.0, "skull": 25.0, "gm": 104.0, "wm": 148.0, "csf": 38.0},
    "t2": {"air": 0.0, "scalp": 130.0, "skull": 20.0, "gm": 118.0, "wm": 85.0, "csf": 215.0},
    "flair": {"air": 0.0, "scalp": 140.0, "skull": 20.0, "gm": 116.0, "wm": 96.0, "csf": 30.0},
}
#: Mean 8-bit level of each tumour label on each channel (each drawn within +-10% per image).
LESION_LEVELS = {
    "t1": {"necrosis": 40.0, "edema": 100.0, "non_enhancing": 85.0, "enhancing": 110.0},
    "t1c": {"necrosis": 45.0, "edema": 108.0, "non_enhancing": 92.0, "enhancing": 240.0},
    "t2": {"necrosis": 205.0, "edema": 185.0, "non_enhancing": 160.0, "enhancing": 145.0},
    "flair": {"necrosis": 125.0, "edema": 205.0, "non_enhancing": 170.0, "enhancing": 160.0},
}
_LABELS = ("necrosis", "edema", "non_enhancing", "enhancing")


def region_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """``{region: boolean mask}`` of a label map (:data:`REGIONS` over :data:`REGION_CLASSES`)."""
    return {region: np.isin(labels, [REGION_CLASSES[n] for n in names]) for region, names in REGIONS.items()}


# --- anatomy ----------------------------------------------------------------------------------


def _subject(rng: np.random.Generator, shape: tuple[int, int]) -> dict:
    """One subject's head: tissue fractions, brain, vessel dots, and per-channel levels, bias and noise."""
    h, w = shape
    cy, cx = h / 2 + rng.normal(0, 1.5), w / 2 + rng.normal(0, 1.5)
    ry, rx = rng.uniform(0.40, 0.46) * h, rng.uniform(0.36, 0.44) * w
    rx = min(rx, ry * 1.05)
    angle = rng.normal(0, 0.12)
    wobble = [(k, rng.normal(0, 0.02), rng.uniform(0, 2 * np.pi)) for k in (2, 3)]
    rho, _, _ = _ellipse(shape, cy, cx, ry, rx, angle, wobble)
    edge = np.sqrt(ry * rx)
    head = (rho < 1).astype(np.float32)  # hard outline: the same pixels on every image of the subject
    inner = _sigmoid((0.88 - rho) * edge / 0.6) * head
    brain = _sigmoid((0.80 - rho) * edge / 0.6) * head
    ventricles = np.zeros(shape, np.float32)
    vdy, vdx = rng.normal(-0.05, 0.04), rng.uniform(0.08, 0.14)
    vry, vrx, tilt = rng.uniform(0.15, 0.24), rng.uniform(0.06, 0.1), rng.uniform(0.1, 0.4)
    for side in (-1, 1):
        v, _, _ = _ellipse(shape, cy + vdy * ry, cx + side * vdx * rx, vry * ry, vrx * rx, angle + side * tilt)
        ventricles = np.maximum(ventricles, _sigmoid((1 - v) * 4.0))
    ventricles *= brain
    gyri = _smooth(rng, shape, rng.uniform(1.6, 2.4))
    cortex = np.clip((rho - 0.5) / 0.3, 0, 1)
    sulci = brain * _sigmoid((gyri - 1.3 + 0.9 * cortex) * 3.0) * cortex
    csf = np.maximum(ventricles, sulci)
    parenchyma = np.clip(brain - csf, 0, 1)
    white = _sigmoid((0.58 - rho) * 10 + 0.8 * gyri)
    tissues = dict(air=1 - head, scalp=head - inner, skull=np.clip(inner - brain, 0, 1), csf=csf,
                   wm=parenchyma * white, gm=parenchyma * (1 - white))
    meninges = np.exp(-(((rho - 0.80) * edge / 0.9) ** 2)).astype(np.float32) * head
    vessels = np.zeros(shape, np.float32)
    spots = np.argwhere((rho < 0.7) & (ventricles < 0.2))
    for _ in range(int(rng.integers(2, 4))):
        y, x = spots[rng.integers(len(spots))]
        vessels[y, x] = 1.0
    vessels = ndimage.gaussian_filter(vessels, 0.7)
    vessels /= max(float(vessels.max()), 1e-6)
    texture = _smooth(rng, shape, 1.0)
    channels = {}
    for name in CHANNELS:
        levels = {k: v * rng.uniform(0.93, 1.07) for k, v in TISSUE_LEVELS[name].items()}
        anatomy = sum(tissues[k] * np.float32(levels[k]) for k in tissues) * (1 + 0.04 * texture)
        if name == "t1c":
            anatomy = anatomy + np.float32(rng.uniform(45, 70)) * meninges * brain
            anatomy = anatomy + np.float32(rng.uniform(90, 130)) * vessels
        bias = 1 + rng.uniform(0.03, 0.10) * _smooth(rng, shape, 16)
        channels[name] = dict(anatomy=anatomy.astype(np.float32), bias=bias.astype(np.float32),
                              noise=float(rng.uniform(3.0, 7.0)))
    return dict(shape=shape, rho=rho, brain=brain, ventricles=ventricles, channels=channels)


# --- lesions ----------------------------------------------------------------------------------


def _lesion(rng: np.random.Generator, sub: dict, taken: np.ndarray, scale: float) -> np.ndarray | None:
    """One lesion's label map (0 outside it), clear of ``taken``; None where none fits."""
    shape = sub["shape"]
    h, w = shape
    inside = ndimage.binary_erosion(sub["brain"] > 0.5, iterations=3)
    candidates = np.argwhere((sub["rho"] < 0.55) & (sub["ventricles"] < 0.3) & ~taken)
    if not len(candidates):
        return None
    for _ in range(12):
        cy, cx = candidates[rng.integers(len(candidates))] + rng.uniform(-0.5, 0.5, 2)
        r = rng.uniform(0.05, 0.13) * min(h, w) * scale
        wobble = [(k, rng.normal(0, 0.2 / k), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)]
        rho_core, _, _ = _ellipse(shape, cy, cx, r, r * rng.uniform(0.75, 1.3), rng.uniform(0, np.pi), wobble)
        core = (rho_core < 1) & inside
        if core.sum() < 6:
            continue
        grow = rng.uniform(1.4, 2.2)
        wobble = [(k, rng.normal(0, 0.3 / k), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5, 6)]
        rho_edema, _, _ = _ellipse(shape, cy + rng.normal(0, 0.2 * r), cx + rng.normal(0, 0.2 * r), r * grow,
                                   r * grow * rng.uniform(0.75, 1.3), rng.uniform(0, np.pi), wobble)
        complete = ((rho_edema < 1) | ndimage.binary_dilation(core, iterations=2)) & (sub["brain"] > 0.5)
        if (complete & taken).any():
            continue
        labels = np.where(complete, REGION_CLASSES["edema"], 0).astype(np.uint8)
        depth = ndimage.distance_transform_edt(core)
        if r >= 4.5 and rng.uniform() < 0.75:  # high-grade-like: enhancing rim, necrotic centre, patches
            rim = rng.uniform(1.5, 3.0)
            labels[core] = REGION_CLASSES["necrosis"]
            labels[core & (depth <= rim)] = REGION_CLASSES["enhancing"]
            field = _smooth(rng, shape, 1.5)
            patches = core & (depth > 1.5) & (field > np.quantile(field[core], rng.uniform(0.65, 0.9)))
            labels[patches] = REGION_CLASSES["non_enhancing"]
        else:  # low-grade-like: non-enhancing, sometimes a small enhancing focus
            labels[core] = REGION_CLASSES["non_enhancing"]
            if rng.uniform() < 0.4:
                y, x = np.argwhere(core)[rng.integers(int(core.sum()))]
                focus, _, _ = _ellipse(shape, y, x, 1.3, 1.3)
                labels[core & (focus < 1)] = REGION_CLASSES["enhancing"]
        return labels
    return None


def _image(sub: dict, rng: np.random.Generator, lesion_on: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One image of a subject: ``({channel: uint8 image}, uint8 label map)``."""
    shape = sub["shape"]
    labels = np.zeros(shape, np.uint8)
    if lesion_on:
        taken = np.zeros(shape, bool)
        for n in range(1 + int(rng.uniform() < 0.25)):
            lesion = _lesion(rng, sub, taken, 1.0 if n == 0 else 0.6)
            if lesion is None:
                continue
            labels = np.maximum(labels, lesion)
            taken |= ndimage.binary_dilation(lesion > 0, iterations=3)
    # soft (partial volume) fraction of each label, and the lesion texture
    fractions = {name: ndimage.gaussian_filter((labels == REGION_CLASSES[name]).astype(np.float32), 0.6)
                 for name in _LABELS}
    total = sum(fractions.values())
    texture = 1 + 0.07 * _smooth(rng, shape, 1.2)
    planes = {}
    for name in CHANNELS:
        ch = sub["channels"][name]
        lesion = sum(fractions[k] * np.float32(LESION_LEVELS[name][k] * rng.uniform(0.9, 1.1)) for k in _LABELS)
        image = ch["anatomy"] * (1 - total) + lesion * texture
        image = image * ch["bias"] * np.float32(rng.uniform(0.95, 1.05))
        image = image + np.float32(ch["noise"]) * rng.standard_normal(shape, dtype=np.float32)
        planes[name] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return planes, labels


# --- the second rater -------------------------------------------------------------------------


def _jitter(region: np.ndarray, rng: np.random.Generator, most: int = 2) -> np.ndarray:
    """``region`` grown by 1-``most`` px in some places and shrunk by 1-``most`` px in others (a smooth
    random field decides where; 2 px with chance 1/3)."""
    if not region.any():
        return region
    grow, shrink = (1 + int(most > 1 and rng.uniform() < 1 / 3) for _ in range(2))
    grown = ndimage.binary_dilation(region, iterations=grow)
    shrunk = ndimage.binary_erosion(region, iterations=shrink)
    field = _smooth(rng, region.shape, rng.uniform(2.0, 4.0))
    out = shrunk | (grown & (field > rng.uniform(-0.5, 0.5)))
    return ndimage.binary_opening(out) | (out & region)  # no ragged single pixels added along the outline


def _rater2(labels: np.ndarray, rng: np.random.Generator, omit: bool) -> tuple[np.ndarray, str]:
    """Rater 2's label map for the truth ``labels`` and what was omitted ("" if nothing)."""
    truth = region_masks(labels)
    complete = _jitter(truth["complete"], rng)
    core = _jitter(truth["core"], rng) & complete
    # The enhancing rim, near the true one, is what lies between the moved core outline (at least
    # its outer pixel) and the non-enhancing inside, whose outline moves by 1 px: it follows the
    # core outline rather than vanishing where the core shrinks.
    inner = np.isin(labels, [REGION_CLASSES["necrosis"], REGION_CLASSES["non_enhancing"]])
    outline = core & ~ndimage.binary_erosion(core)
    enhancing = (core & (outline | ~_jitter(inner, rng, 1))
                 & ndimage.binary_dilation(truth["enhancing"], iterations=2))
    out = np.where(complete, REGION_CLASSES["edema"], 0).astype(np.uint8)
    if inner.any():  # each core pixel takes the inner label of the nearest such truth pixel
        _, (iy, ix) = ndimage.distance_transform_edt(~inner, return_indices=True)
        out[core] = labels[iy, ix][core]
    else:
        out[core] = REGION_CLASSES["non_enhancing"]
    out[enhancing] = REGION_CLASSES["enhancing"]
    omitted = ""
    if omit and out.any():
        components, n = ndimage.label(out > 0)
        if n > 1:
            sizes = np.bincount(components.ravel())[1:]
            out[components == 1 + int(np.argmin(sizes))] = 0
            omitted = "smallest lesion"
        elif (out == REGION_CLASSES["enhancing"]).any():
            out[out == REGION_CLASSES["enhancing"]] = REGION_CLASSES["non_enhancing"]
            omitted = "enhancing"
        elif (out == REGION_CLASSES["non_enhancing"]).any():
            out[out == REGION_CLASSES["non_enhancing"]] = REGION_CLASSES["necrosis"]
            omitted = "non_enhancing"
    return out, omitted


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = int(a.sum() + b.sum())
    return None if total == 0 else 2 * int((a & b).sum()) / total


# --- the generator ----------------------------------------------------------------------------


def _check_share(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _clean(out: Path) -> None:
    """Remove the files of a previous output in the folders :func:`_prepare` does not know."""
    for folder in ("t1c", RATER2_FOLDER):
        path = out / folder
        if path.is_dir():
            for file in path.iterdir():
                if _ID_FILE.match(file.name) and file.is_file():
                    file.unlink()
            if not any(path.iterdir()):
                path.rmdir()


def generate_regions(raw_dir: str | os.PathLike, *, n_subjects: int = 8, images_per_subject: int = 6,
                     n_test_subjects: int = 2, test_images_per_subject: int = 3,
                     size: Sequence[int] = (64, 64), seed: int = 0, missing_share: float = 0.1,
                     empty_share: float = 0.25, rater2_share: float = 0.5) -> pd.DataFrame:
    """Write the brain-tumour-like nested-region dataset under ``raw_dir`` (see the module doc).

    Returns the sheet frame, as :func:`plexus.data.sheet.read_sheet` reads ``raw_dir/sheet.tsv``
    with ``channels=CHANNELS`` (channel and mask paths absolute, ``mask_rater2`` relative to
    ``raw_dir``). Raises :class:`ValueError` for bad arguments and for a ``raw_dir`` holding other
    files than a previous synthetic output.
    """
    _check_counts(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                  test_images_per_subject=test_images_per_subject)
    seed = _check_seed(seed)
    (shape,) = _check_sizes([size])
    missing_share = _check_share("missing_share", missing_share)
    empty_share = _check_share("empty_share", empty_share)
    rater2_share = _check_share("rater2_share", rater2_share)
    out = Path(raw_dir)
    _prepare(out)
    _clean(out)
    classes = REGION_CLASSES
    rows: list[dict] = []
    pixels, images = np.zeros(len(classes), np.int64), np.zeros(len(classes), np.int64)
    missing = {"train": dict.fromkeys(CHANNELS, 0), "test": dict.fromkeys(CHANNELS, 0)}
    lesion_images = {"train": 0, "test": 0}
    rated: list[tuple[str, np.ndarray, np.ndarray]] = []  # (image_id, truth, rater 2) of the rated images
    omissions: dict[str, str] = {}
    for split, code, prefix, n_sub, n_img in _splits(n_subjects, images_per_subject, n_test_subjects,
                                                      test_images_per_subject):
        n_rows = n_sub * n_img
        split_rng = _rng(seed, _REGIONS, code, 0, 0)
        lacking = np.full(n_rows, -1)
        chosen = split_rng.permutation(n_rows)[: int(round(missing_share * n_rows))]
        lacking[chosen] = split_rng.integers(len(CHANNELS), size=len(chosen))
        empty = _absent(split_rng, n_rows, empty_share)
        second = _absent(split_rng, n_rows, rater2_share) if split == "train" else np.zeros(n_rows, bool)
        # omissions: about one in eight of the rated lesion images, chosen among them
        candidates = np.flatnonzero(second & ~empty)
        omit = np.zeros(n_rows, bool)
        omit[candidates[_absent(split_rng, len(candidates), OMISSION_SHARE)]] = True
        for s in range(1, n_sub + 1):
            sub = _subject(_rng(seed, _REGIONS, code, s, 0), shape)
            for i in range(1, n_img + 1):
                k = (s - 1) * n_img + i - 1
                image_id, subject = _id(prefix, s, i, n_sub, n_img)
                planes, labels = _image(sub, _rng(seed, _REGIONS, code, s, i), not empty[k])
                lesion_images[split] += bool(labels.any())
                row = dict(image_id=image_id, subject=subject, split=split)
                for c, name in enumerate(CHANNELS):
                    if c == lacking[k]:
                        row[name] = ""
                        missing[split][name] += 1
                        continue
                    row[name] = f"{name}/{image_id}.png"
                    _write_png(out / row[name], planes[name])
                row["mask"] = row["mask_rater2"] = ""
                if split == "train":
                    row["mask"] = f"{MASK_FOLDER}/{image_id}.png"
                    _write_png(out / row["mask"], labels)
                    counts = _count_classes(labels, classes)
                    pixels += counts
                    images += counts > 0
                    if second[k]:
                        other, omitted = _rater2(labels, _rng(seed, _REGIONS, code, s, i, 1), bool(omit[k]))
                        row["mask_rater2"] = f"{RATER2_FOLDER}/{image_id}.png"
                        _write_png(out / row["mask_rater2"], other)
                        rated.append((image_id, labels, other))
                        if omitted:
                            omissions[image_id] = omitted
                rows.append(row)
    n_train = sum(r["split"] == "train" for r in rows)
    dice = {}
    for region in REGIONS:
        scores = [_dice(region_masks(a)[region], region_masks(b)[region]) for _, a, b in rated]
        scores = [d for d in scores if d is not None]
        dice[region] = float(np.mean(scores)) if scores else None
    summary = dict(
        dataset="regions",
        arguments=dict(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                       test_images_per_subject=test_images_per_subject, size=list(shape), seed=seed,
                       missing_share=missing_share, empty_share=empty_share, rater2_share=rater2_share),
        classes=classes, regions=REGIONS, channels=list(CHANNELS),
        images={"train": n_train, "test": len(rows) - n_train},
        lesion_images=lesion_images,
        empty_images={split: sum(r["split"] == split for r in rows) - lesion_images[split]
                      for split in ("train", "test")},
        missing_channels=missing,
        rows_missing_a_channel={split: int(sum(counts.values())) for split, counts in missing.items()},
        rater2=dict(rated=len(rated), rated_with_lesion=sum(bool(a.any()) for _, a, _ in rated),
                    differing=sum(bool((a != b).any()) for _, a, b in rated), omissions=omissions,
                    mean_dice=dice),
        **_class_stats(pixels, images, n_train, classes),
    )
    return _finish(out, rows, CHANNELS, summary)
