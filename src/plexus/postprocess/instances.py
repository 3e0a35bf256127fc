"""Probability maps to instance label maps (nuclei), and tuning of how.

:func:`label_instances` thresholds a foreground probability map, splits the
foreground into objects and returns consecutive labels 1..N (int32). The image
processing is scikit-image's (pinned in requirements.in) and scipy.ndimage's:

* thresholds (:func:`foreground_mask`): a fixed cutoff, ``prob >``
  ``skimage.filters.threshold_otsu(prob)`` (256 bins over the map's own range; a
  constant map falls back to the cutoff 0.5), or
  ``skimage.filters.apply_hysteresis_threshold(prob, low, high)`` (components of
  ``prob > low`` holding a pixel ``> high``; scikit-image grows them through
  4-connected pixels, so a weak pixel touching the strong region only diagonally is
  dropped);
* objects are 8-connected components (``scipy.ndimage.label`` with a 3x3
  structure), as in the rest of plexus;
* objects smaller than ``min_size`` pixels are removed last, by the one component
  removal of every task (:func:`plexus.postprocess.components.remove_small_components`
  with ``objects="labels"``: each label one object, so touching instances stay apart; an
  object of exactly ``min_size`` pixels stays, as with
  ``skimage.morphology.remove_small_objects(labels, max_size=min_size - 1)``, tested), and
  the rest renumbered 1..N in the order of their old labels
  (``skimage.segmentation.relabel_sequential``).

None of the hand-written versions these replaced was 2x faster on 256x256 nuclei maps
(``benchmarks/bench_instances.py``; relabelling and hysteresis came closest, 1.9x).

Touching nuclei form one component; two optional splits separate them:

* ``watershed=True``: seeds are the peaks of the Euclidean distance to the background
  (``skimage.feature.peak_local_max`` per component, maximum over a disc of radius
  ``min_distance``, peaks more than ``min_distance`` apart). On a flat ridge (a
  plateau) ``peak_local_max`` keeps a row of equal peaks ``min_distance + 1`` apart,
  so peaks within about ``min_distance`` of each other, through the foreground, are
  joined into one seed: a bar gives one seed, not many. The seeds flood the inverted
  distance (``skimage.segmentation.watershed``, 8-connected, inside the foreground,
  one level per pixel of distance), so two discs meeting at a neck split at the neck.
* ``boundary`` given (a probability map of object outlines, as from a two-channel
  network): seeds are the components of foreground minus ``boundary > 0.5``, grown
  back over the foreground by a watershed of the boundary probability (levels of
  0.1). ``watershed`` is then ignored.

Either flood runs inside the foreground only, so it never crosses the background
into another component; a foreground component that holds no seed (all of it
boundary) is kept as one object.

Both floods run on integer levels, as the hand-written flood that scikit-image's
replaced did: one level per pixel of distance (``floor(max - distance)``) or per 0.1
of boundary probability. Within a level scikit-image's priority queue is first in,
first out, so the seeds grow breadth-first and meet halfway, as before; the
hand-written flood gave a pixel reached by two seeds in the same step to the larger
label, scikit-image to the one that queued it first, so a few pixels on the line
between two objects can change sides (``benchmarks/bench_instances.py`` counts them
and compares the mean AP). The levels matter: on the unquantised distance the larger
of two unequal touching discs takes a strip of the smaller one.

:func:`tune_instances` scores a grid of :class:`InstanceSettings` by mean DSB2018
average precision over images; :func:`cross_fitted_instances` picks a setting for
each fold on the other folds only, for an honest estimate of the tuned score.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from skimage.morphology import disk
from skimage.segmentation import relabel_sequential, watershed

from plexus.evaluation.crossfit import choose_per_fold
from plexus.evaluation.instances import average_precision
from plexus.postprocess.components import EIGHT, remove_small_components

__all__ = [
    "InstanceSettings",
    "cross_fitted_instances",
    "foreground_mask",
    "instance_grid",
    "label_instances",
    "relabel_consecutive",
    "remove_small_instances",
    "tune_instances",
]

METHODS = ("cutoff", "otsu", "hysteresis")
_BOUNDARY_LEVELS = 10  # boundary probability is flooded in steps of 0.1


def foreground_mask(prob: np.ndarray, method: str = "cutoff", cutoff: float = 0.5,
                    low: float | None = None, high: float | None = None) -> np.ndarray:
    """Boolean foreground: ``prob > cutoff``, ``prob >`` its Otsu threshold, or hysteresis ``low``/``high``.

    Otsu of a constant map is taken as 0.5 (scikit-image returns the constant).
    Hysteresis keeps the (4-connected) components of ``prob > low`` (``low``
    defaults to ``cutoff``) that hold a pixel ``> high``; ``high`` is required for it.
    """
    prob = np.asarray(prob, dtype=np.float32)
    if method == "cutoff":
        return prob > cutoff
    if method == "otsu":
        constant = prob.size == 0 or prob.min() == prob.max()
        return prob > (0.5 if constant else threshold_otsu(prob))
    if method == "hysteresis":
        if high is None:
            raise ValueError("method='hysteresis' needs high")
        return apply_hysteresis_threshold(prob, cutoff if low is None else low, high)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels 1..N in the order of the old values (0 stays background), int32."""
    labels = np.asarray(labels)
    if not labels.size or labels.max() <= 0:
        return np.zeros(labels.shape, dtype=np.int32)
    return relabel_sequential(labels)[0].astype(np.int32, copy=False)


def remove_small_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects of fewer than ``min_size`` pixels and relabel the rest 1..N (int32)."""
    return relabel_consecutive(remove_small_components(labels, int(min_size), objects="labels"))


def _distance_seeds(components: np.ndarray, distance: np.ndarray, min_distance: int) -> np.ndarray:
    """Seed labels at the distance peaks; peaks within ~min_distance of each other inside a component join."""
    radius = max(int(min_distance), 1)
    peaks = np.zeros(distance.shape, dtype=bool)
    coords = peak_local_max(distance, min_distance=radius, footprint=disk(radius), labels=components,
                            threshold_abs=0, exclude_border=False)
    peaks[tuple(coords.T)] = True
    # peaks of one plateau are radius + 1 apart: discs of radius ceil(radius / 2) around them touch
    near = ndimage.binary_dilation(peaks, structure=disk((radius + 1) // 2)) & (components > 0)
    joined, _ = ndimage.label(near, structure=EIGHT)
    return np.where(peaks, joined, 0)


def _flood(mask: np.ndarray, components: np.ndarray, heights: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Watershed of ``heights`` from ``seeds`` inside ``mask``; components without a seed become objects."""
    labels = watershed(heights, seeds, mask=mask, connectivity=2)
    orphan = mask & (labels == 0)
    if orphan.any():  # the whole component is its seed, numbered after the others
        labels[orphan] = components[orphan] + labels.max()
    return labels


def label_instances(prob: np.ndarray, *, method: str = "cutoff", cutoff: float = 0.5,
                    low: float | None = None, high: float | None = None, min_size: int = 0,
                    watershed: bool = False, min_distance: int = 5,
                    boundary: np.ndarray | None = None) -> np.ndarray:
    """Instance label map (int32, consecutive 1..N) of a foreground probability map (H, W)."""
    mask = foreground_mask(prob, method, cutoff, low, high)
    components, _ = ndimage.label(mask, structure=EIGHT)
    if boundary is not None:
        boundary = np.asarray(boundary, dtype=np.float32)
        if boundary.shape != mask.shape:
            raise ValueError(f"boundary shape {boundary.shape} differs from prob shape {mask.shape}")
        seeds, _ = ndimage.label(mask & ~(boundary > 0.5), structure=EIGHT)
        levels = np.floor(np.clip(boundary, 0, 1) * _BOUNDARY_LEVELS).astype(np.int32)
        labels = _flood(mask, components, levels, seeds)
    elif watershed and mask.any():
        distance = ndimage.distance_transform_edt(mask)
        levels = np.floor(distance.max() - distance).astype(np.int32)  # one level per pixel of distance
        labels = _flood(mask, components, levels, _distance_seeds(components, distance, min_distance))
    else:
        labels = components
    return remove_small_instances(labels, min_size)


# --- settings and tuning ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceSettings:
    """One way of turning a probability map into instances (the arguments of :func:`label_instances`)."""

    method: str = "cutoff"
    cutoff: float = 0.5
    low: float | None = None
    high: float | None = None
    min_size: int = 0
    watershed: bool = False
    min_distance: int = 5

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {METHODS}")
        if self.method == "hysteresis" and self.high is None:
            raise ValueError("method='hysteresis' needs high")

    def apply(self, prob: np.ndarray, boundary: np.ndarray | None = None) -> np.ndarray:
        """The label map of one probability map."""
        return label_instances(prob, boundary=boundary, **self.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InstanceSettings:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown InstanceSettings keys: {unknown}")
        return cls(**data)


def instance_grid(*, cutoffs: Sequence[float] = (0.4, 0.5, 0.6), otsu: bool = True,
                  hysteresis_pairs: Sequence[tuple[float, float]] = ((0.3, 0.7),),
                  min_sizes: Sequence[int] = (0, 16), min_distances: Sequence[int] = (4, 7),
                  watershed: Sequence[bool] = (False, True)) -> Iterator[InstanceSettings]:
    """The settings of a small grid, in a fixed order (which breaks ties in tuning: first wins).

    Order: thresholds (each cutoff ascending as given, then Otsu, then each
    hysteresis ``(low, high)``) x ``watershed`` (as given; ``min_distance`` only
    varies with the watershed on) x ``min_sizes``. The defaults give
    (3 + 1 + 1) x (1 + 2) x 2 = 30 settings.
    """
    thresholds = [{"method": "cutoff", "cutoff": float(c)} for c in cutoffs]
    if otsu:
        thresholds.append({"method": "otsu"})
    thresholds += [{"method": "hysteresis", "low": float(lo), "high": float(hi)} for lo, hi in hysteresis_pairs]
    for threshold in thresholds:
        for split in watershed:
            for distance in (min_distances if split else (InstanceSettings.min_distance,)):
                for size in min_sizes:
                    yield InstanceSettings(**threshold, watershed=bool(split), min_distance=int(distance),
                                           min_size=int(size))


def _score_matrix(probs: Sequence[np.ndarray], trues: Sequence[np.ndarray],
                  grid: Sequence[InstanceSettings]) -> np.ndarray:
    """Mean AP of every image (rows) under every setting (columns).

    Settings that differ only in ``min_size`` share one labelling per image.
    """
    if len(probs) != len(trues):
        raise ValueError(f"got {len(probs)} probability maps and {len(trues)} true label maps")
    scores = np.empty((len(probs), len(grid)))
    for i, (prob, true) in enumerate(zip(probs, trues)):
        unfiltered: dict[InstanceSettings, np.ndarray] = {}
        for j, setting in enumerate(grid):
            key = InstanceSettings(**{**setting.to_dict(), "min_size": 0})
            if key not in unfiltered:
                unfiltered[key] = key.apply(prob)
            pred = remove_small_instances(unfiltered[key], setting.min_size)
            scores[i, j] = average_precision(true, pred)[0]
    return scores


def _as_grid(grid: Iterable[InstanceSettings]) -> list[InstanceSettings]:
    grid = list(grid)
    if not grid:
        raise ValueError("the settings grid is empty")
    return grid


def _settings_frame(grid: Sequence[InstanceSettings]) -> pd.DataFrame:
    frame = pd.DataFrame([s.to_dict() for s in grid])
    frame.insert(0, "setting", np.arange(len(grid)))
    return frame


def tune_instances(probs: Sequence[np.ndarray], trues: Sequence[np.ndarray], groups: Sequence | None,
                   grid: Iterable[InstanceSettings]) -> tuple[InstanceSettings, pd.DataFrame]:
    """The setting of ``grid`` with the best mean AP over the images, and every setting's scores.

    ``groups`` (one label per image, e.g. the image type, or None) only adds
    columns ``mean_ap[<group>]`` to the table; the choice uses the mean over all
    images. Ties go to the first setting in grid order.
    """
    grid = _as_grid(grid)
    scores = _score_matrix(probs, trues, grid)
    table = _settings_frame(grid)
    table["mean_ap"] = scores.mean(axis=0)
    if groups is not None:
        groups = np.asarray(list(groups), dtype=object)
        if len(groups) != len(scores):
            raise ValueError(f"got {len(groups)} groups for {len(scores)} images")
        for group in pd.unique(groups):
            table[f"mean_ap[{group}]"] = scores[groups == group].mean(axis=0)
    best = int(np.argmax(table["mean_ap"].to_numpy()))  # first maximum
    return grid[best], table


def cross_fitted_instances(probs: Sequence[np.ndarray], trues: Sequence[np.ndarray], folds: Sequence,
                           grid: Iterable[InstanceSettings]) -> tuple[pd.DataFrame, dict]:
    """Per image, the AP under the setting chosen on the *other* folds' images.

    For each fold k the best setting by mean AP over the images of all folds but k
    (ties: first in grid order) labels fold k's images. Returns a table with one
    row per image (``image`` = position in the inputs, ``fold``, ``setting`` = grid
    index, the setting's fields, ``mean_ap``) and ``{fold: InstanceSettings}``.
    """
    grid = _as_grid(grid)
    folds = np.asarray(list(folds), dtype=object)
    if len(folds) != len(probs):
        raise ValueError(f"got {len(folds)} fold labels for {len(probs)} images")
    scores = _score_matrix(probs, trues, grid)
    settings = _settings_frame(grid)
    chosen, rows = {}, []
    for fold, best in choose_per_fold(scores, folds)[1].items():  # first maximum
        inside, best = folds == fold, int(best)
        chosen[fold] = grid[best]
        part = settings.iloc[[best] * int(inside.sum())].reset_index(drop=True)
        part.insert(0, "fold", fold)
        part.insert(0, "image", np.flatnonzero(inside))
        part["mean_ap"] = scores[inside, best]
        rows.append(part)
    table = pd.concat(rows).sort_values("image", kind="stable").reset_index(drop=True)
    return table, chosen
