"""Post-processing of multi-class probability maps: upsample, argmax, per-class minimum component area.

Conventions (those of :mod:`plexus.evaluation.multiclass`):

* A model of ``K`` classes gives softmax probabilities ``(K, h, w)`` at its input size.
  :func:`upsample_probs` brings them to the image's original ``(H, W)`` with the binary path's
  interpolation (:func:`plexus.data.resize.upsample`: bilinear, ``align_corners=False``, no
  antialiasing, clamped to [0, 1]), so a two-class model and the binary path see the same
  upsampled maps. :func:`argmax_labels` then gives the label map ``(H, W)`` of class indices,
  0 the background; ties go to the lower class index.
* Objects are the 8-connected components of each class's pixels (``label == c``), the binary
  path's connectivity (:data:`plexus.postprocess.components.EIGHT`): pixels touching diagonally
  are one object. Components of different classes never merge.
* :func:`remove_small` turns every component of class ``c`` with fewer than ``min_areas[c]``
  pixels into background (0); a component of exactly ``min_areas[c]`` pixels stays: the one
  component removal of every task, :func:`plexus.postprocess.components.remove_small_components`,
  on each class's mask. Minimum areas 0 and 1 remove nothing. ``min_areas`` has one entry per
  class, index 0 (the background) is ignored.
* Classes are tuned independently: removing class ``c``'s small components only turns class-``c``
  pixels into background, which changes no other class's tp/fp/fn, so class ``c``'s Dice depends on
  ``min_areas[c]`` alone. The score is each class's mean per-image Dice, 1 on an image where the
  class is absent from both prediction and truth (Kaggle's convention).

Tuning is done from *component records* instead of rerunning :func:`remove_small` per grid value:
:func:`image_records` labels each class's predicted components once per image and keeps, per class,
a :class:`ComponentTable` (each component's size and its overlap with the true class, and the true
area). Removing the components below ``m`` pixels then leaves ``pred_area`` = the sizes >= ``m`` and
``tp`` = their overlaps, so every grid value's Dice is a few sums (:meth:`ComponentTable.dice_grid`).
:func:`tune_min_areas` streams images through this; :func:`dice_from_records`,
:func:`tune_from_records` and :func:`cross_fitted_min_areas` work on records kept by the caller
(the latter gives an honest estimate: each fold's images scored with minimum areas tuned on the
other folds). Ties between grid values (equal mean Dice up to 1e-12) go to the smallest minimum area.

The map candidates of a decision: :func:`class_crf` replaces the softmax by the marginals of a
K-label dense CRF with the image (its argmax is then the label map); the others work on each
foreground class against the rest: :func:`class_thresholds` (the class's Otsu threshold or
hysteresis seed level on its own probability map: only the class's pixels of the argmax map can
turn to background) and :func:`class_steps` (the class's largest component, its filled holes).

:func:`write_label_map` writes a label map as the mask values of the config (PNG or TIFF) and
:func:`rle_rows` as one Kaggle run-length row per foreground class.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from plexus.evaluation.crossfit import choose_per_fold, first_best
from plexus.evaluation.multiclass import MAX_CLASSES, class_counts, from_class_index
from plexus.io.atomic import atomic_path
from plexus.io.rle import encode
from plexus.postprocess.components import label_components, remove_small_components

__all__ = [
    "ComponentTable",
    "CrossFit",
    "ImageRecords",
    "argmax_labels",
    "class_crf",
    "class_steps",
    "class_thresholds",
    "cross_fitted_min_areas",
    "dice_from_records",
    "image_records",
    "mean_dice_grid",
    "remove_small",
    "rle_rows",
    "tune_from_records",
    "tune_min_areas",
    "upsample_probs",
    "write_label_map",
]

#: Mean Dice within this of the best counts as a tie (float sums in another order differ by ~1e-16).
TIE_TOLERANCE = 1e-12
LABEL_SUFFIXES = (".png", ".tif", ".tiff")


# --- probabilities to labels -----------------------------------------------------------------


def upsample_probs(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities ``(K, h, w)`` (float16/32, model size) as float32 ``(K, H, W)`` at the original ``shape``.

    Bilinear, ``align_corners=False``, clamped to [0, 1]: :func:`plexus.data.resize.upsample`, as
    the binary path. The result never shares memory with ``prob``.
    """
    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise ValueError(f"expected probabilities (K, h, w), got shape {prob.shape}")
    shape = (int(shape[0]), int(shape[1]))
    from plexus.data.resize import upsample  # torch: only the jobs that upsample import it (seconds)

    out = upsample(prob, shape).numpy()
    if np.shares_memory(out, prob):  # already float32 at ``shape``: upsample returns a view
        out = out.copy()
    return out


def argmax_labels(prob: np.ndarray) -> np.ndarray:
    """The uint8 label map ``(H, W)``: each pixel's most probable class (the lower index on ties)."""
    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise ValueError(f"expected probabilities (K, H, W), got shape {prob.shape}")
    if not 1 <= prob.shape[0] <= MAX_CLASSES:
        raise ValueError(f"expected 1..{MAX_CLASSES} classes, got {prob.shape[0]}")
    return np.argmax(prob, axis=0).astype(np.uint8)


def class_crf(prob: np.ndarray, image: np.ndarray, crf_settings: dict | None = None) -> np.ndarray:
    """float32 ``(K, H, W)``: the marginals of a K-label fully connected CRF of the probabilities
    ``prob`` ``(K, H, W)`` and the grey ``image`` ``(H, W)``: the binary task's
    :func:`plexus.postprocess.candidates.dense_crf` with ``K`` labels, at ``crf_settings``
    (``postprocess.crf``; :data:`~plexus.postprocess.candidates.CRF_DEFAULTS` for those not given)."""
    from plexus.postprocess.candidates import CRF_DEFAULTS, dense_crf

    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise ValueError(f"expected probabilities (K, H, W), got shape {prob.shape}")
    return dense_crf(prob, image, **{**CRF_DEFAULTS, **(crf_settings or {})})


def _check_label(label: np.ndarray, n_classes: int, what: str = "label map") -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"expected a 2-D {what}, got shape {label.shape}")
    if label.dtype.kind not in "iub":
        raise ValueError(f"expected an integer {what}, got {label.dtype}")
    if label.size and (int(label.min()) < 0 or int(label.max()) >= n_classes):
        raise ValueError(f"the {what} holds class indices {int(label.min())}..{int(label.max())}, "
                         f"expected 0..{n_classes - 1}")
    return label


def _check_min_areas(min_areas: Sequence[int]) -> np.ndarray:
    areas = np.asarray(min_areas)
    if areas.ndim != 1 or len(areas) < 2:
        raise ValueError(f"expected one minimum area per class (the background's ignored), got {min_areas!r}")
    if areas.dtype.kind not in "iu" or (len(areas) and areas.min() < 0):
        raise ValueError(f"minimum areas must be integers >= 0, got {min_areas!r}")
    return areas.astype(np.int64)


def remove_small(label: np.ndarray, min_areas: Sequence[int]) -> np.ndarray:
    """``label`` with every 8-connected component of class ``c`` below ``min_areas[c]`` pixels set to 0.

    ``min_areas`` has one entry per class (``K``); entry 0 is ignored. Returns a new array of
    ``label``'s dtype; other classes' pixels are untouched.
    """
    areas = _check_min_areas(min_areas)
    label = _check_label(label, len(areas))
    out = label.copy()
    if not (areas[1:] > 1).any():
        return out
    present = np.bincount(label.ravel(), minlength=len(areas)) > 0
    for c in range(1, len(areas)):
        if areas[c] <= 1 or not present[c]:
            continue
        mask = label == c
        out[mask & ~remove_small_components(mask, int(areas[c]))] = 0
    return out


def class_thresholds(label: np.ndarray, prob: np.ndarray, *, otsu: bool = False,
                     hysteresis_high: float | None = None) -> np.ndarray:
    """``label`` (an argmax map of ``prob``, ``(K, H, W)`` at the same size) thresholded one class
    against the rest, each foreground class ``c`` on its own probability map ``prob[c]``: only
    class-``c`` pixels become background (0), none changes to another class.

    * ``otsu``: a pixel of class ``c`` stays ``c`` only where ``prob[c]`` is above the image's Otsu
      threshold of ``prob[c]`` (:func:`plexus.postprocess.candidates.otsu_threshold`).
    * ``hysteresis_high``: an 8-connected component of class ``c`` stays only when one of its
      pixels has ``prob[c] > hysteresis_high`` (the seeds of
      :func:`plexus.postprocess.candidates.hysteresis`, grown to the class's pixels of the argmax
      map: :func:`~plexus.postprocess.candidates.seeded_components`).

    The two are alternatives (both replace the argmax's own cut between a class and the rest);
    neither given: a copy of ``label``. Returns a new array.
    """
    from plexus.postprocess.candidates import otsu_threshold, seeded_components

    if otsu and hysteresis_high is not None:
        raise ValueError("otsu and hysteresis are alternatives: give one of them")
    prob = np.asarray(prob)
    label = _check_label(label, prob.shape[0])
    if prob.ndim != 3 or prob.shape[1:] != label.shape:
        raise ValueError(f"expected probabilities (K, {label.shape[0]}, {label.shape[1]}), got shape {prob.shape}")
    out = label.copy()
    if not otsu and hysteresis_high is None:
        return out
    present = np.bincount(label.ravel(), minlength=prob.shape[0]) > 0
    for c in range(1, prob.shape[0]):
        if not present[c]:
            continue
        mask = label == c
        if otsu:
            out[mask & ~(prob[c] > otsu_threshold(prob[c]))] = 0
        else:
            out[mask & ~seeded_components(prob[c], float(hysteresis_high), label_components(mask))] = 0
    return out


def class_steps(label: np.ndarray, n_classes: int, *, largest_only: bool = False,
                fill_holes: bool = False) -> np.ndarray:
    """``label`` with the map candidates applied to each foreground class's mask in turn: only the
    largest 8-connected component kept (the others become background), then the background pixels
    that the class's mask encloses (:func:`plexus.postprocess.candidates.fill_holes`) given to the
    class. Another class's pixels are never changed. Returns a new array."""
    from plexus.postprocess.candidates import fill_holes as fill

    label = _check_label(label, n_classes)
    out = label.copy()
    if not (largest_only or fill_holes):
        return out
    present = np.bincount(label.ravel(), minlength=n_classes) > 0
    for c in range(1, n_classes):
        if not present[c]:
            continue
        mask = out == c
        if largest_only:
            kept = remove_small_components(mask, 0, largest_only=True)
            out[mask & ~kept] = 0
            mask = kept
        if fill_holes:
            out[fill(mask) & (out == 0)] = c
    return out


# --- component records --------------------------------------------------------------------------


def _check_grid(grid: Sequence[int]) -> np.ndarray:
    values = np.asarray(grid)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"expected a non-empty list of minimum areas, got {grid!r}")
    if values.dtype.kind not in "iu" or values.min() < 0:
        raise ValueError(f"minimum areas must be integers >= 0, got {values.tolist()}")
    if len(values) > 1 and not (np.diff(values) > 0).all():
        raise ValueError(f"the grid of minimum areas must be strictly increasing, got {values.tolist()}")
    return values.astype(np.int64)


def _dice(inter: np.ndarray, pred_area: np.ndarray, true_area: int) -> np.ndarray:
    """``2 inter / (pred_area + true_area)``, 1 where both are 0 (as :func:`class_scores`)."""
    both = (pred_area + true_area).astype(np.float64)
    out = np.ones(both.shape, dtype=np.float64)
    np.divide(2 * inter.astype(np.float64), both, out=out, where=both > 0)
    return out


@dataclass(frozen=True, eq=False)
class ComponentTable:
    """One foreground class in one image: its predicted components and the true area.

    ``sizes``: int64 ``(n,)``, the pixels of each 8-connected component of the predicted class,
    ascending. ``overlaps``: int64 ``(n,)``, how many of each component's pixels are truly that
    class (same order). ``true_area``: the class's pixels in the truth.
    """

    sizes: np.ndarray
    overlaps: np.ndarray
    true_area: int

    def dice_grid(self, grid: Sequence[int] | np.ndarray) -> np.ndarray:
        """float64 ``(G,)``: the class's Dice after removing its components below each ``grid`` value."""
        grid = np.asarray(grid, dtype=np.int64)
        kept_from = np.searchsorted(self.sizes, grid, side="left")  # the first component of >= m pixels
        pred_area = _suffix_sums(self.sizes)[kept_from]
        inter = _suffix_sums(self.overlaps)[kept_from]
        return _dice(inter, pred_area, self.true_area)

    def dice(self, min_area: int) -> float:
        """The class's Dice after removing its components below ``min_area`` pixels."""
        return float(self.dice_grid([int(min_area)])[0])


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """``(n + 1,)``: entry ``i`` is ``values[i:].sum()`` (0 at ``n``), exact in int64."""
    prefix = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
    return prefix[-1] - prefix


#: One image's records: a :class:`ComponentTable` per foreground class, entry ``i`` for class ``i + 1``.
ImageRecords = tuple[ComponentTable, ...]


def image_records(pred: np.ndarray, true: np.ndarray, n_classes: int) -> ImageRecords:
    """The :class:`ComponentTable` of each foreground class of one image (label maps of the same shape)."""
    counts = class_counts(pred, true, n_classes)  # also checks shapes and class indices
    pred, true = np.asarray(pred), np.asarray(true)
    tables = []
    for c in range(1, n_classes):
        true_area = int(counts[c - 1, 3])
        predicted = counts[c - 1, 0] + counts[c - 1, 1]
        if predicted == 0:
            empty = np.zeros(0, dtype=np.int64)
            tables.append(ComponentTable(empty, empty, true_area))
            continue
        box, labels, sizes = label_components(pred == c)
        overlaps = np.bincount(labels[true[box] == c], minlength=len(sizes))
        order = np.argsort(sizes[1:], kind="stable")
        tables.append(ComponentTable(sizes[1:][order].astype(np.int64), overlaps[1:][order].astype(np.int64),
                                     true_area))
    return tuple(tables)


def _image_grid(records: ImageRecords, grid: np.ndarray) -> np.ndarray:
    """float64 ``(K-1, G)``: one image's Dice per foreground class and grid value."""
    return np.stack([table.dice_grid(grid) for table in records]) if records else np.zeros((0, len(grid)))


def dice_from_records(records: ImageRecords, min_areas: Sequence[int]) -> np.ndarray:
    """float64 ``(K-1,)``: one image's Dice per foreground class after :func:`remove_small` with ``min_areas``.

    ``min_areas`` has one entry per class (``K``), entry 0 ignored, as for :func:`remove_small`.
    """
    areas = _check_min_areas(min_areas)
    if len(areas) != len(records) + 1:
        raise ValueError(f"{len(areas)} minimum areas for {len(records) + 1} classes")
    return np.array([table.dice(int(areas[c + 1])) for c, table in enumerate(records)], dtype=np.float64)


def _n_foreground(records_list: Sequence[ImageRecords]) -> int:
    sizes = {len(records) for records in records_list}
    if len(sizes) != 1:
        raise ValueError("no images" if not sizes else f"images with different numbers of classes: {sorted(sizes)}")
    return sizes.pop()


def mean_dice_grid(records_list: Sequence[ImageRecords], grid: Sequence[int]) -> np.ndarray:
    """float64 ``(K-1, G)``: the mean over images of each foreground class's Dice at each grid value."""
    values = _check_grid(grid)
    total = np.zeros((_n_foreground(records_list), len(values)))
    for records in records_list:
        total += _image_grid(records, values)
    return total / len(records_list)


def _best_index(dice: np.ndarray) -> np.ndarray:
    """Per row, the first column within :data:`TIE_TOLERANCE` of the row's maximum."""
    return first_best(dice, TIE_TOLERANCE)


def tune_from_records(records_list: Sequence[ImageRecords], grid: Sequence[int]) -> list[int]:
    """The best minimum area per class on ``grid`` (mean Dice over the images; ties to the smallest).

    Returns ``K`` minimum areas, ready for :func:`remove_small` (entry 0, the background's, is 0).
    """
    values = _check_grid(grid)
    best = _best_index(mean_dice_grid(records_list, values))
    return [0, *values[best].tolist()]


def tune_min_areas(items: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int, grid: Sequence[int],
                   class_names: Sequence[str]) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Tune each foreground class's minimum component area on ``grid``, streaming one image at a time.

    ``items`` yields ``(pred_label, true_label)`` pairs at the original size (any sizes, one image
    each); ``class_names`` lists all ``K`` classes, the background first. Returns ``(grid_frame,
    best)``: ``grid_frame`` has columns ``class, min_area, dice`` (the mean Dice over images, one row
    per foreground class and grid value) and ``best`` maps each foreground class name to
    ``{"min_area", "dice", "dice_at_0"}`` (the best grid value, its mean Dice, the mean Dice without
    removal). Ties go to the smallest minimum area.
    """
    names = [str(name) for name in class_names]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} classes")
    values = _check_grid(grid)
    with_zero = np.concatenate(([0], values))  # column 0: no removal
    total = np.zeros((n_classes - 1, len(with_zero)))
    n_images = 0
    for pred, true in items:
        total += _image_grid(image_records(pred, true, n_classes), with_zero)
        n_images += 1
    if n_images == 0:
        raise ValueError("no images to tune the minimum areas on")
    mean = total / n_images
    frame = pd.DataFrame({
        "class": np.repeat(np.asarray(names[1:], dtype=object), len(values)),
        "min_area": np.tile(values, n_classes - 1),
        "dice": mean[:, 1:].ravel(),
    })
    best_index = _best_index(mean[:, 1:])
    best = {
        name: {"min_area": int(values[i]), "dice": float(mean[c, 1 + i]), "dice_at_0": float(mean[c, 0])}
        for c, (name, i) in enumerate(zip(names[1:], best_index.tolist()))
    }
    return frame, best


class CrossFit(NamedTuple):
    """:func:`cross_fitted_min_areas`' result.

    ``dice``: float64 ``(N, K-1)``, each image's Dice per foreground class with the minimum areas
    tuned without its fold. ``folds``: each image's fold. ``min_areas``: fold -> the ``K`` minimum
    areas tuned on the other folds (entry 0 is 0).
    """

    dice: np.ndarray
    folds: list[Hashable]
    min_areas: dict[Hashable, list[int]]

    def to_frame(self, image_ids: Sequence, class_names: Sequence[str]) -> pd.DataFrame:
        """Long format: ``image_id, fold, class, min_area, dice``, one row per (image, foreground class)."""
        names = [str(name) for name in class_names]
        n, foreground = self.dice.shape
        if len(image_ids) != n or len(names) != foreground + 1:
            raise ValueError(f"{len(image_ids)} ids and {len(names)} class names for {n} images of "
                             f"{foreground + 1} classes")
        areas = np.array([self.min_areas[fold][1:] for fold in self.folds], dtype=np.int64).reshape(n, foreground)
        return pd.DataFrame({
            "image_id": np.repeat(np.asarray(list(image_ids), dtype=object), foreground),
            "fold": np.repeat(np.asarray(self.folds, dtype=object), foreground),
            "class": np.tile(np.asarray(names[1:], dtype=object), n),
            "min_area": areas.ravel(),
            "dice": self.dice.ravel(),
        })


def cross_fitted_min_areas(records_list: Sequence[ImageRecords], folds: Sequence[Hashable],
                           grid: Sequence[int]) -> CrossFit:
    """An honest estimate of the tuned minimum areas: each fold scored with areas tuned on the others.

    ``records_list[i]`` are image ``i``'s :func:`image_records`, ``folds[i]`` its fold (any hashable).
    For each fold, the minimum areas are tuned (:func:`tune_from_records`) on the images of every
    other fold and applied to the fold's images. Needs at least two folds.
    """
    values = _check_grid(grid)
    folds = list(folds)
    if len(folds) != len(records_list):
        raise ValueError(f"{len(folds)} folds for {len(records_list)} images")
    foreground = _n_foreground(records_list)
    per_image = np.stack([_image_grid(records, values) for records in records_list])  # (N, K-1, G)
    dice, chosen = choose_per_fold(per_image, folds, TIE_TOLERANCE)
    min_areas: dict[Hashable, list[int]] = {fold: [0, *values[best].tolist()] for fold, best in chosen.items()}
    return CrossFit(dice.reshape(len(records_list), foreground), folds, min_areas)


# --- writing -------------------------------------------------------------------------------------


def write_label_map(path: str | os.PathLike, label: np.ndarray, values: Sequence[int]) -> None:
    """Write ``label`` as its mask values (:func:`from_class_index`), atomically.

    By suffix: ``.png`` (8- or 16-bit gray, Pillow) or ``.tif``/``.tiff`` (tifffile, LZW). 8-bit
    when every value is below 256, else 16-bit; RGB when the classes are colours.
    :func:`plexus.io.images.read_image` and :func:`plexus.evaluation.multiclass.to_class_index` read
    it back as ``label``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise ValueError(f"{path}: unsupported label map type {path.suffix!r} (supported: {', '.join(LABEL_SUFFIXES)})")
    label = _check_label(label, len(values))
    array = np.ascontiguousarray(from_class_index(label, values))
    with atomic_path(path) as tmp:
        if suffix == ".png":
            from PIL import Image

            Image.fromarray(array).save(tmp, format="PNG")  # uint8 -> L, uint16 -> I;16
        else:
            import tifffile

            tifffile.imwrite(tmp, array, photometric="rgb" if array.ndim == 3 else "minisblack", compression="lzw")


def rle_rows(image_id: Any, label: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Kaggle run-length rows of one label map: ``{"image_id", "class", "EncodedPixels"}`` per foreground class.

    ``class_names`` lists all ``K`` classes, the background first; a class absent from ``label``
    gets the empty string.
    """
    names = [str(name) for name in class_names]
    label = _check_label(label, len(names))
    return [{"image_id": image_id, "class": name, "EncodedPixels": encode(label == c)}
            for c, name in enumerate(names) if c > 0]
