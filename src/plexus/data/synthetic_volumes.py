"""A seeded synthetic brain-tumour-like dataset of 3-D NIfTI volumes (BraTS-style), described by a volume sheet.

:func:`generate_volumes` writes a small, fully deterministic dataset for the ``volumes`` data
format: per case four co-registered MRI-like modalities and a label volume of the four tumour
sub-regions of :mod:`plexus.data.synthetic_regions` (whose classes, regions, modalities and
intensity tables it uses: :data:`REGION_CLASSES`, :data:`REGIONS`, :data:`CHANNELS`,
:data:`TISSUE_LEVELS`, :data:`LESION_LEVELS`).

Orientation: the voxel axes are deliberately not in the usual (R, A, S) order. Voxel axis 0
runs left -> right (R), axis 1 inferior -> superior (S, the slice axis, coarse: 2.5 mm by
default), axis 2 posterior -> anterior (A). The affine (:func:`volume_affine`) is that
permutation times the spacing, with the origin at minus the centre, so the volume's centre is
the world origin and ``nibabel.aff2axcodes(affine) == ("R", "S", "A")``; both the qform and
the sform hold it (code 1, scanner), units mm. A reader must take the axial axis from the
header, not assume the last one. ``spacing`` is per voxel axis (and equals the header zooms).

Files under ``raw_dir`` (case ids ``c01``, ``c02`` ... for training, ``t01`` ... for test):

``cases/{case}/{case}_{modality}.nii.gz`` for ``t1``, ``t1c``, ``t2``, ``flair`` (:data:`CHANNELS`)
    float32, ``shape`` voxels (64 x 20 x 64 by default, at least 16 x 8 x 16). Each case has one head: a hard-edged
    ellipsoid of scalp around a dark skull and a brain of gray and white matter with a gyral
    texture, cerebrospinal fluid in two ventricles and the sulci, and one smooth bias field per
    modality. Levels are those of :data:`TISSUE_LEVELS` and :data:`LESION_LEVELS` times
    :data:`LEVEL_SCALE` (4: about 0..1000, as MRI), each drawn within +-7% / +-10% per case,
    plus Gaussian noise. Voxels outside the head are exactly 0 and every voxel inside it is at
    least 1, so the nonzero voxels are the head (as in skull-stripped BraTS data, where the
    "nonzero voxels" normalisation is meaningful). T1c also shows a meningeal line at the
    brain's edge and two or three bright vessel dots.
``cases/{case}/{case}_seg.nii.gz`` (training cases)
    uint8 label volume with the same affine, values :data:`REGION_CLASSES`: 0 background,
    1 necrosis, 2 edema, 3 non_enhancing, 4 enhancing.
``cases/{case}/{case}_seg_rater2.nii.gz`` (``round(rater2_share * n_cases)`` training cases)
    a second expert's labels: the complete and core regions each locally dilated and eroded by
    1 voxel in the axial plane (raters outline slice by slice; a smooth random field decides
    where they grow and where they shrink), the core clipped to the complete region so the
    nesting stays valid, the enhancing rim following the moved core outline, core voxels taking
    the label of the nearest truth necrosis or non-enhancing voxel. Lesion cases are chosen
    first, so rated cases differ from the truth whenever there are enough lesion cases.
``test_labels/{case}_seg.nii.gz`` (test cases)
    the test cases' labels, for a labelled-test-set option; the sheet never references them.
``volumes.tsv`` (:data:`VOLUME_SHEET`)
    tab-separated, columns ``case, split, t1, t1c, t2, flair, mask, mask_rater2``
    (:data:`SHEET_COLUMNS`), train rows then test rows, paths relative to ``raw_dir`` with
    forward slashes; an empty cell for a missing modality, for the test rows' masks and for
    cases without a second rater.
``synthetic_summary.json``
    the arguments, classes, regions and modalities, the axis codes and slice axis, the case
    counts (train, test, with a lesion, empty), the per-label voxel counts of the training
    labels, the slices holding a lesion per case, which cases miss which modality, which have a
    second rater and its mean Dice per region. :func:`generate_volumes` returns the same dict.

Lesions are 3-D: a core (an irregular ellipsoid: its radius modulated by a smooth random
field) inside a larger irregular edema halo that surrounds it everywhere by at least two voxels
in the axial plane and one slice through it. Most cores of a fair size are high-grade-like: an
enhancing rim shell (1.5-3 mm, always including the core's outer voxel layer) around a necrotic
centre, with some non-enhancing patches inside; the others are low-grade-like (non-enhancing,
sometimes a small enhancing focus). A quarter of the lesion cases have a second, smaller
lesion. Lesions lie inside the brain and span several slices but never all of them, so each
lesion case has empty slices. ``empty_cases`` training cases have no lesion; every test case
has one. ``round(missing_share * (n_cases + n_test_cases))`` cases (over both splits) lack
exactly one modality drawn at random (no file, empty cell).

Random draws come from ``numpy.random.default_rng([seed, 4, split, case, ...])`` (dataset
code 4: :mod:`plexus.data.synthetic_semantic` uses 1 and 2, :mod:`~plexus.data.synthetic_regions`
3; case 0 of split 0: the draws of the whole dataset), and the gzip streams carry no time
stamp, so a rerun with the same arguments writes the same bytes. The folder rules (a new or
empty folder, or a previous synthetic output, whose files are removed first) are those of
:mod:`plexus.data.synthetic_semantic`; only the files named above are removed. The defaults (10
cases of 64 x 20 x 64 voxels) take about a second.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from plexus.data.synthetic_regions import (
    CHANNELS,
    LESION_LEVELS,
    REGION_CLASSES,
    REGIONS,
    TISSUE_LEVELS,
    _check_share,
    _dice,
    region_masks,
)
from plexus.data.synthetic_semantic import (
    MARKER_NAME,
    SUMMARY_NAME,
    _check_seed,
    _prepare,
    _rng,
    _sigmoid,
    _smooth,
)
from plexus.io.atomic import atomic_path, write_json, write_text

__all__ = [
    "AXCODES", "CASE_FOLDER", "CHANNELS", "LEVEL_SCALE", "REGIONS", "REGION_CLASSES", "SHEET_COLUMNS",
    "SLICE_AXIS", "SUMMARY_NAME", "TEST_LABEL_FOLDER", "VOLUME_SHEET", "generate_volumes", "volume_affine",
]

VOLUME_SHEET = "volumes.tsv"
CASE_FOLDER = "cases"
TEST_LABEL_FOLDER = "test_labels"
SHEET_COLUMNS = ("case", "split", *CHANNELS, "mask", "mask_rater2")
AXCODES = ("R", "S", "A")  # what voxel axes 0, 1, 2 point to
SLICE_AXIS = 1  # the axial (inferior -> superior) voxel axis
LEVEL_SCALE = 4.0  # TISSUE_LEVELS and LESION_LEVELS are 8-bit levels; the volumes are about 0..1000
MIN_SHAPE = (16, 8, 16)  # fewest voxels along each axis (R, S, A): a brain that holds a lesion
SECOND_LESION_SHARE = 0.25  # share of the lesion cases with a second, smaller lesion

_VOLUMES = 4  # dataset code in the RNG seeds (synthetic_semantic uses 1 and 2, synthetic_regions 3)
_TRAIN, _TEST = 0, 1
_LABELS = ("necrosis", "edema", "non_enhancing", "enhancing")
_CASE_FILE = re.compile(r"^\.?[ct]\d{2,}_(t1|t1c|t2|flair|seg|seg_rater2)\.nii\.gz(\..*\.tmp\.gz)?$")
# structuring elements: 4-neighbours in the axial plane (axes 0 and 2), the two neighbours through it (axis 1)
_INPLANE = np.zeros((3, 1, 3), bool)
_INPLANE[1, 0, :] = _INPLANE[:, 0, 1] = True
_THROUGH = np.ones((1, 3, 1), bool)


# --- geometry ---------------------------------------------------------------------------------


def volume_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """The voxel -> world (RAS+, mm) affine of the volumes: axis 0 -> +x (R), axis 1 -> +z (S),
    axis 2 -> +y (A), scaled by ``spacing`` (per voxel axis); the volume's centre is the origin."""
    linear = np.zeros((3, 3))
    linear[0, 0], linear[2, 1], linear[1, 2] = spacing  # column j: the world step of voxel axis j
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ ((np.asarray(shape, float) - 1) / 2)
    return affine


def _coords(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> list[np.ndarray]:
    """Voxel-centre positions in mm along each voxel axis, from the volume's centre, broadcastable."""
    out = []
    for axis, (n, s) in enumerate(zip(shape, spacing)):
        view = [1, 1, 1]
        view[axis] = n
        out.append(((np.arange(n, dtype=np.float32) - np.float32((n - 1) / 2)) * np.float32(s)).reshape(view))
    return out


def _sigma(spacing: Sequence[float], mm: float) -> tuple[float, ...]:
    """A Gaussian width of ``mm`` millimetres in voxels along each axis."""
    return tuple(mm / s for s in spacing)


def _field(rng: np.random.Generator, shape: tuple[int, ...], spacing: Sequence[float], mm: float) -> np.ndarray:
    """A smooth random field of width ``mm`` (zero mean, unit standard deviation, float32): :func:`_smooth`,
    on a grid ``step`` times coarser and linearly interpolated where the width spans many voxels (fast)."""
    sigma = _sigma(spacing, mm)
    step = [max(1, int(s // 3)) for s in sigma]
    if step == [1, 1, 1]:
        return _smooth(rng, shape, sigma)
    coarse = tuple(n if k == 1 else (n - 1) // k + 2 for n, k in zip(shape, step))
    field = _smooth(rng, coarse, tuple(s / k for s, k in zip(sigma, step)))
    for axis, (n, k) in enumerate(zip(shape, step)):  # separable linear interpolation, axis by axis
        if k > 1:
            low, weight = np.divmod(np.arange(n), k)
            view = [1] * len(shape)
            view[axis] = n
            weight = (weight / np.float32(k)).astype(np.float32).reshape(view)
            field = np.take(field, low, axis) * (1 - weight) + np.take(field, low + 1, axis) * weight
    return ((field - field.mean()) / (field.std() + 1e-6)).astype(np.float32)


def _ellipsoid(coords: list[np.ndarray], centre: Sequence[float], radii: Sequence[float], angle: float = 0.0,
               field: np.ndarray | None = None, amplitude: float = 0.0) -> np.ndarray:
    """The normalised radius of every voxel (1 on the outline) of an ellipsoid with ``radii`` (mm, per
    voxel axis) turned by ``angle`` in the axial plane; ``amplitude * field`` makes its outline irregular."""
    x, s, y = (c - np.float32(c0) for c, c0 in zip(coords, centre))
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u, v = cos * x + sin * y, -sin * x + cos * y
    rho = np.sqrt((u / np.float32(radii[0])) ** 2 + (s / np.float32(radii[1])) ** 2
                  + (v / np.float32(radii[2])) ** 2)
    if field is not None:
        rho = rho / (1 + np.float32(amplitude) * field)
    return rho.astype(np.float32)


def _grow(mask: np.ndarray, inplane: int, through: int = 0) -> np.ndarray:
    """``mask`` dilated by ``inplane`` voxels in the axial plane, then ``through`` slices across it."""
    if inplane:
        mask = ndimage.binary_dilation(mask, _INPLANE, iterations=inplane)
    if through:
        mask = ndimage.binary_dilation(mask, _THROUGH, iterations=through)
    return mask


def _shrink(mask: np.ndarray, inplane: int, through: int = 0) -> np.ndarray:
    """``mask`` eroded by ``inplane`` voxels in the axial plane and ``through`` slices across it."""
    if inplane:
        mask = ndimage.binary_erosion(mask, _INPLANE, iterations=inplane)
    if through:
        mask = ndimage.binary_erosion(mask, _THROUGH, iterations=through)
    return mask


# --- anatomy ----------------------------------------------------------------------------------


def _head(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> dict:
    """One case's head: tissue fractions, brain, and per-modality anatomy, bias field and noise."""
    coords = _coords(shape, spacing)
    extent = [n * s for n, s in zip(shape, spacing)]
    centre = [rng.normal(0, 0.02 * e) for e in extent]
    r_lr, r_ap = rng.uniform(0.36, 0.42) * extent[0], rng.uniform(0.40, 0.46) * extent[2]
    r_lr = min(r_lr, r_ap * 1.05)
    r_si = rng.uniform(0.50, 0.56) * extent[1]  # every slice cuts the head; the outer ones miss the brain
    angle = rng.normal(0, 0.12)
    rho = _ellipsoid(coords, centre, (r_lr, r_si, r_ap), angle, _field(rng, shape, spacing, 10.0), 0.02)
    edge = math.sqrt(r_lr * r_ap)  # mm per unit of rho in the axial plane
    head = rho < 1  # hard outline: the same voxels on every modality
    inner = _sigmoid((0.88 - rho) * edge / 0.6) * head
    brain = (_sigmoid((0.80 - rho) * edge / 0.6) * head).astype(np.float32)
    ventricles = np.zeros(shape, np.float32)
    d_ap, d_lr = rng.normal(-0.05, 0.04), rng.uniform(0.08, 0.14)
    v_ap, v_lr = rng.uniform(0.15, 0.24), rng.uniform(0.06, 0.1)
    v_si, tilt = rng.uniform(0.2, 0.3), rng.uniform(0.1, 0.4)
    for side in (-1, 1):
        v_centre = (centre[0] + side * d_lr * r_lr, centre[1] + rng.normal(0, 0.03) * r_si, centre[2] + d_ap * r_ap)
        v = _ellipsoid(coords, v_centre, (v_lr * r_lr, v_si * r_si, v_ap * r_ap), angle + side * tilt)
        ventricles = np.maximum(ventricles, _sigmoid((1 - v) * 4.0))
    ventricles *= brain
    gyri = _field(rng, shape, spacing, rng.uniform(1.6, 2.4))
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
        vessels[tuple(spots[rng.integers(len(spots))])] = 1.0
    vessels = ndimage.gaussian_filter(vessels, _sigma(spacing, 0.8))
    vessels /= max(float(vessels.max()), 1e-6)
    texture = _field(rng, shape, spacing, 1.0)
    modalities = {}
    for name in CHANNELS:
        levels = {k: v * LEVEL_SCALE * rng.uniform(0.93, 1.07) for k, v in TISSUE_LEVELS[name].items()}
        anatomy = sum(tissues[k] * np.float32(levels[k]) for k in tissues) * (1 + 0.04 * texture)
        if name == "t1c":
            anatomy = anatomy + np.float32(LEVEL_SCALE * rng.uniform(45, 70)) * meninges * brain
            anatomy = anatomy + np.float32(LEVEL_SCALE * rng.uniform(90, 130)) * vessels
        bias = 1 + rng.uniform(0.03, 0.10) * _field(rng, shape, spacing, 16.0)
        modalities[name] = dict(anatomy=anatomy.astype(np.float32), bias=bias.astype(np.float32),
                                noise=float(LEVEL_SCALE * rng.uniform(3.0, 7.0)))
    return dict(shape=shape, spacing=spacing, coords=coords, extent=extent, rho=rho, head=head, brain=brain,
                ventricles=ventricles, modalities=modalities)


# --- lesions ----------------------------------------------------------------------------------


def _lesion(rng: np.random.Generator, case: dict, taken: np.ndarray, scale: float) -> np.ndarray | None:
    """One 3-D lesion's label volume (0 outside it), clear of ``taken``; None where none fits."""
    shape, spacing, coords = case["shape"], case["spacing"], case["coords"]
    brain = case["brain"] > 0.5
    inside = _shrink(brain, 3, 1)  # the core keeps 2 voxels of halo in-plane and 1 slice through it
    candidates = np.argwhere((case["rho"] < 0.55) & (case["ventricles"] < 0.3) & inside & ~taken)
    if not len(candidates):
        return None
    short = min(case["extent"][0], case["extent"][2])
    for _ in range(12):
        voxel = candidates[rng.integers(len(candidates))]
        centre = [float(coords[a].ravel()[voxel[a]]) + rng.uniform(-0.5, 0.5) * spacing[a] for a in range(3)]
        r = max(rng.uniform(0.10, 0.20) * short, min(rng.uniform(3.5, 5.0), 0.2 * short)) * scale
        radii = (r, r * rng.uniform(0.6, 1.0), r * rng.uniform(0.75, 1.3))
        field = _field(rng, shape, spacing, r / 2)
        core = (_ellipsoid(coords, centre, radii, rng.uniform(0, np.pi), field, 0.15) < 1) & inside
        if core.sum() < 8:
            continue
        grow = rng.uniform(1.4, 2.2)
        shifted = [c + rng.normal(0, 0.2 * r) for c in centre]
        halo = (r * grow, radii[1] * grow * rng.uniform(0.8, 1.1), r * grow * rng.uniform(0.75, 1.3))
        field = _field(rng, shape, spacing, r * grow / 2)
        edema = _ellipsoid(coords, shifted, halo, rng.uniform(0, np.pi), field, 0.25) < 1
        complete = (edema | _grow(core, 2, 1)) & brain
        if (complete & taken).any():
            continue
        slices = complete.any(axis=(0, 2))
        if slices.all() or slices.sum() < 2:  # several slices, never all of them
            continue
        labels = np.where(complete, REGION_CLASSES["edema"], 0).astype(np.uint8)
        if r >= 4.5 and rng.uniform() < 0.75:  # high-grade-like: enhancing rim shell, necrotic centre, patches
            depth = ndimage.distance_transform_edt(core, sampling=spacing)
            shell = core & ~ndimage.binary_erosion(core)  # the outer voxel layer, in all three directions
            labels[core] = REGION_CLASSES["necrosis"]
            labels[core & (shell | (depth <= rng.uniform(1.5, 3.0)))] = REGION_CLASSES["enhancing"]
            centre_voxels = labels == REGION_CLASSES["necrosis"]
            if centre_voxels.sum() > 4:
                field = _field(rng, shape, spacing, 1.5)
                cut = np.quantile(field[centre_voxels], rng.uniform(0.65, 0.9))
                labels[centre_voxels & (depth > 1.5) & (field > cut)] = REGION_CLASSES["non_enhancing"]
        else:  # low-grade-like: non-enhancing, sometimes a small enhancing focus
            labels[core] = REGION_CLASSES["non_enhancing"]
            if rng.uniform() < 0.4:
                voxel = np.argwhere(core)[rng.integers(int(core.sum()))]
                focus = [float(coords[a].ravel()[voxel[a]]) for a in range(3)]
                labels[core & (_ellipsoid(coords, focus, (1.5, 1.5, 1.5)) < 1)] = REGION_CLASSES["enhancing"]
        return labels
    return None


def _case_volumes(case: dict, rng: np.random.Generator, lesion_on: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One case's ``({modality: float32 volume}, uint8 label volume)``."""
    shape, spacing = case["shape"], case["spacing"]
    labels = np.zeros(shape, np.uint8)
    if lesion_on:
        taken = np.zeros(shape, bool)
        for n in range(1 + int(rng.uniform() < SECOND_LESION_SHARE)):
            for scale in (1.0, 0.75, 0.5) if n == 0 else (0.6,):  # the first lesion shrinks until it fits
                lesion = _lesion(rng, case, taken, scale)
                if lesion is not None:
                    break
            if lesion is None:
                continue
            labels = np.maximum(labels, lesion)
            taken |= _grow(lesion > 0, 3, 1)
        if not labels.any():
            raise ValueError(f"shape {shape} with spacing {spacing} mm is too small to hold a lesion")
    # soft (partial volume) fraction of each label, and the lesion texture
    fractions = {name: ndimage.gaussian_filter((labels == REGION_CLASSES[name]).astype(np.float32),
                                               _sigma(spacing, 0.6)) for name in _LABELS}
    total = sum(fractions.values())
    texture = 1 + 0.07 * _field(rng, shape, spacing, 1.2)
    volumes = {}
    for name in CHANNELS:
        mod = case["modalities"][name]
        lesion = sum(fractions[k] * np.float32(LEVEL_SCALE * LESION_LEVELS[name][k] * rng.uniform(0.9, 1.1))
                     for k in _LABELS)
        volume = mod["anatomy"] * (1 - total) + lesion * texture
        volume = volume * mod["bias"] * np.float32(rng.uniform(0.95, 1.05))
        volume = volume + np.float32(mod["noise"]) * rng.standard_normal(shape, dtype=np.float32)
        volumes[name] = np.where(case["head"], np.maximum(volume, 1.0), 0.0).astype(np.float32)
    return volumes, labels


# --- the second rater -------------------------------------------------------------------------


def _jitter(region: np.ndarray, rng: np.random.Generator, spacing: Sequence[float]) -> np.ndarray:
    """``region`` grown by 1 voxel in the axial plane in some places and shrunk by 1 in others (a smooth
    random field decides where); the 3-D counterpart of :func:`plexus.data.synthetic_regions._jitter`."""
    if not region.any():
        return region
    grown, shrunk = _grow(region, 1), _shrink(region, 1)
    field = _field(rng, region.shape, spacing, rng.uniform(2.0, 4.0))
    out = shrunk | (grown & (field > rng.uniform(-0.5, 0.5)))
    return ndimage.binary_opening(out, _INPLANE) | (out & region)  # no ragged single voxels added


def _rater2(labels: np.ndarray, rng: np.random.Generator, spacing: Sequence[float]) -> np.ndarray:
    """Rater 2's label volume for the truth ``labels`` (nested like the truth)."""
    truth = region_masks(labels)
    complete = _jitter(truth["complete"], rng, spacing)
    core = _jitter(truth["core"], rng, spacing) & complete
    inner = np.isin(labels, [REGION_CLASSES["necrosis"], REGION_CLASSES["non_enhancing"]])
    outline = core & ~_shrink(core, 1)
    enhancing = (core & (outline | ~_jitter(inner, rng, spacing))
                 & _grow(truth["enhancing"], 2, 1))
    out = np.where(complete, REGION_CLASSES["edema"], 0).astype(np.uint8)
    if inner.any():  # each core voxel takes the inner label of the nearest such truth voxel
        _, nearest = ndimage.distance_transform_edt(~inner, sampling=spacing, return_indices=True)
        out[core] = labels[tuple(nearest)][core]
    else:
        out[core] = REGION_CLASSES["non_enhancing"]
    out[enhancing] = REGION_CLASSES["enhancing"]
    return out


# --- writing ----------------------------------------------------------------------------------


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """``array`` as a gzipped NIfTI-1 file with ``affine`` as qform and sform, without a gzip time stamp."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))


def _clean(out: Path) -> None:
    """Remove a previous output's sheet and volumes (only the files this module writes, and the
    folders left empty), after :func:`plexus.data.synthetic_semantic._prepare` removed the rest."""
    (out / VOLUME_SHEET).unlink(missing_ok=True)
    cases = out / CASE_FOLDER
    folders = [p for p in cases.iterdir() if p.is_dir()] + [cases] if cases.is_dir() else []
    for folder in [*folders, out / TEST_LABEL_FOLDER]:
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            if _CASE_FILE.match(file.name) and file.is_file():
                file.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def _check_arguments(n_cases, n_test_cases, shape, spacing, empty_cases) -> tuple[tuple, tuple]:
    for name, value, low in (("n_cases", n_cases, 1), ("n_test_cases", n_test_cases, 0),
                             ("empty_cases", empty_cases, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if empty_cases > n_cases:
        raise ValueError(f"empty_cases must be at most n_cases ({n_cases}), got {empty_cases!r}")
    try:
        shape_ok = len(shape) == 3 and all(not isinstance(v, bool) and int(v) == v >= low
                                           for v, low in zip(shape, MIN_SHAPE))
    except (TypeError, ValueError):
        shape_ok = False
    if not shape_ok:
        raise ValueError(f"shape must be three integers, at least {MIN_SHAPE} (voxels along axes R, S, A), "
                         f"got {shape!r}")
    try:
        spacing_ok = len(spacing) == 3 and all(not isinstance(v, bool) and math.isfinite(v) and v > 0
                                               for v in spacing)
    except TypeError:
        spacing_ok = False
    if not spacing_ok:
        raise ValueError(f"spacing must be three positive finite numbers (mm along axes R, S, A), got {spacing!r}")
    return tuple(int(v) for v in shape), tuple(float(v) for v in spacing)


def _case_id(prefix: str, number: int, n: int) -> str:
    return f"{prefix}{number:0{max(2, len(str(n)))}d}"


# --- the generator ----------------------------------------------------------------------------


def generate_volumes(raw_dir: str | os.PathLike, *, n_cases: int = 8, n_test_cases: int = 2,
                     shape: Sequence[int] = (64, 20, 64), spacing: Sequence[float] = (1.0, 2.5, 1.0),
                     empty_cases: int = 1, missing_share: float = 0.25, rater2_share: float = 0.5,
                     seed: int = 0) -> dict:
    """Write the brain-tumour-like 3-D volume dataset under ``raw_dir`` (see the module doc).

    ``shape`` and ``spacing`` are per voxel axis (R, S, A). Returns the summary, also written as
    ``raw_dir/synthetic_summary.json``. Raises :class:`ValueError` naming the argument for bad
    arguments (and naming ``shape`` where a volume proves too small in mm to hold a lesion), and for a
    ``raw_dir`` holding other files than a previous synthetic output.
    """
    shape, spacing = _check_arguments(n_cases, n_test_cases, shape, spacing, empty_cases)
    missing_share = _check_share("missing_share", missing_share)
    rater2_share = _check_share("rater2_share", rater2_share)
    seed = _check_seed(seed)
    out = Path(raw_dir)
    _prepare(out)
    _clean(out)
    affine = volume_affine(shape, spacing)
    cases = [("train", _TRAIN, _case_id("c", i, n_cases), i) for i in range(1, n_cases + 1)]
    cases += [("test", _TEST, _case_id("t", i, n_test_cases), i) for i in range(1, n_test_cases + 1)]
    # the draws of the whole dataset: the empty cases, the missing modalities, the rated cases
    rng = _rng(seed, _VOLUMES, _TRAIN, 0)
    empty = set(rng.permutation(n_cases)[:empty_cases].tolist())
    lacking = {int(k): CHANNELS[int(rng.integers(len(CHANNELS)))]
               for k in rng.permutation(len(cases))[: int(round(missing_share * len(cases)))]}
    lesion_first = [*rng.permutation(sorted(set(range(n_cases)) - empty)).tolist(),
                    *rng.permutation(sorted(empty)).tolist()]
    rated = set(lesion_first[: int(round(rater2_share * n_cases))])
    rows: list[dict[str, str]] = []
    voxels = np.zeros(len(REGION_CLASSES), np.int64)
    lesion_slices: dict[str, list[int]] = {}
    scores: dict[str, list[float]] = {region: [] for region in REGIONS}
    for k, (split, code, case_id, number) in enumerate(cases):
        head = _head(_rng(seed, _VOLUMES, code, number), shape, spacing)
        volumes, labels = _case_volumes(head, _rng(seed, _VOLUMES, code, number, 1),
                                        not (split == "train" and k in empty))
        lesion_slices[case_id] = np.flatnonzero(labels.any(axis=(0, 2))).tolist()
        folder = f"{CASE_FOLDER}/{case_id}"
        row = dict(case=case_id, split=split)
        for name in CHANNELS:
            row[name] = "" if lacking.get(k) == name else f"{folder}/{case_id}_{name}.nii.gz"
            if row[name]:
                _write_nifti(out / row[name], volumes[name], affine)
        row["mask"] = row["mask_rater2"] = ""
        if split == "train":
            row["mask"] = f"{folder}/{case_id}_seg.nii.gz"
            _write_nifti(out / row["mask"], labels, affine)
            voxels += np.bincount(labels.ravel(), minlength=256)[list(REGION_CLASSES.values())]
            if k in rated:
                other = _rater2(labels, _rng(seed, _VOLUMES, code, number, 2), spacing)
                row["mask_rater2"] = f"{folder}/{case_id}_seg_rater2.nii.gz"
                _write_nifti(out / row["mask_rater2"], other, affine)
                for region, mask in region_masks(labels).items():
                    dice = _dice(mask, region_masks(other)[region])
                    if dice is not None:
                        scores[region].append(dice)
        else:
            _write_nifti(out / TEST_LABEL_FOLDER / f"{case_id}_seg.nii.gz", labels, affine)
        rows.append(row)
    lines = ["\t".join(SHEET_COLUMNS)] + ["\t".join(row[c] for c in SHEET_COLUMNS) for row in rows]
    write_text(out / VOLUME_SHEET, "\n".join(lines) + "\n")
    with_lesion = {split: sum(bool(lesion_slices[r["case"]]) for r in rows if r["split"] == split)
                   for split in ("train", "test")}
    summary = dict(
        dataset="volumes",
        arguments=dict(n_cases=n_cases, n_test_cases=n_test_cases, shape=list(shape), spacing=list(spacing),
                       empty_cases=empty_cases, missing_share=missing_share, rater2_share=rater2_share, seed=seed),
        classes=dict(REGION_CLASSES), regions=dict(REGIONS), modalities=list(CHANNELS),
        axcodes=list(AXCODES), slice_axis=SLICE_AXIS, sheet=VOLUME_SHEET,
        cases={"train": n_cases, "test": n_test_cases},
        lesion_cases=with_lesion,
        empty_cases=[r["case"] for r in rows if not lesion_slices[r["case"]]],
        label_voxels={name: int(voxels[i]) for i, name in enumerate(REGION_CLASSES)},
        lesion_slices=lesion_slices,
        missing_modalities={cases[k][2]: name for k, name in sorted(lacking.items())},
        rater2_cases=[r["case"] for r in rows if r["mask_rater2"]],
        rater2_mean_dice={region: float(np.mean(s)) if s else None for region, s in scores.items()},
    )
    write_json(out / SUMMARY_NAME, summary)
    (out / MARKER_NAME).unlink()
    return summary
