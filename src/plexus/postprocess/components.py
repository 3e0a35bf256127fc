"""Objects of a mask and their removal by size: the one place every task does it.

* **Objects.** In a boolean mask, an object is an 8-connected component
  (``scipy.ndimage.label`` with a 3x3 structure): pixels touching diagonally are one object,
  as a nerve cross-section touching itself diagonally is one; in a volume (a case put back
  together, :mod:`plexus.stages.volumes`) a 26-connected one. In an instance label map
  (``objects="labels"``), each nonzero value is one object, so touching instances stay apart.
* **The size rule.** :func:`remove_small_components` keeps an object of **at least**
  ``min_size`` pixels (one of exactly ``min_size`` stays); ``min_size`` 0 and 1 remove nothing.
  With ``largest_only`` it keeps only the largest of the objects left (the first of equal
  largest ones, in label order: raster order of their first pixel).
* **Labelling inside the foreground box.** :func:`label_components` labels a mask inside the
  bounding box of its foreground (:func:`foreground_box`): every component lies inside it, so
  the components and their label numbers (raster order) are those of labelling the whole map,
  at a fraction of the cost (a nerve mask covers a few percent of its map). A caller that
  removes several sizes from one mask (the binary candidates, each class's grid) labels it once
  and passes the :class:`Components` back in.

Callers: the binary candidates (:mod:`plexus.postprocess.candidates`: ``remove_small``,
``largest_component``, hysteresis's grown components), each class of the ``classes`` task
(:func:`plexus.postprocess.multiclass.remove_small` and its tuning records), each region of the
``regions`` task (:mod:`plexus.tasks.regions`) and the instances' minimum size
(:func:`plexus.postprocess.instances.remove_small_instances`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = ["EIGHT", "Components", "foreground_box", "kept_objects", "label_components", "label_objects",
           "mask_of", "remove_small_components"]

#: 8-connectivity: the 3x3 structure of ``scipy.ndimage.label``.
EIGHT = np.ones((3, 3), dtype=bool)
OBJECTS = ("connected", "labels")


class Components(NamedTuple):
    """The objects of a mask: ``labels`` (0 the background) inside ``box`` of the map, and
    ``sizes[i]`` the pixels of object ``i`` (``sizes[0]``, the background, is 0)."""

    box: tuple[slice, ...]
    labels: np.ndarray
    sizes: np.ndarray


def foreground_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of a mask's foreground (a 2-D map or an n-D volume), or None when it is empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        spans = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
                 for axis in range(mask.ndim)]
        if len(spans[0]) == 0:
            return None
        return tuple(slice(int(span[0]), int(span[-1]) + 1) for span in spans)
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def label_components(mask: np.ndarray) -> Components | None:
    """The 8-connected components of a boolean mask (of a volume: 26-connected, every voxel sharing
    a face, an edge or a corner), labelled inside its :func:`foreground_box` (the same components and
    numbers as labelling the whole map), or None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    box = foreground_box(mask)
    if box is None:
        return None
    structure = EIGHT if mask.ndim == 2 else np.ones((3,) * mask.ndim, dtype=bool)
    labels, n = ndimage.label(mask[box], structure=structure)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return Components(box, labels, sizes)


def label_objects(labels: np.ndarray) -> Components | None:
    """The objects of an instance label map (each nonzero value one object, values >= 0), inside
    its foreground box, or None when it has none."""
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError(f"an instance label map holds values >= 0, got {int(labels.min())}")
    box = foreground_box(labels > 0)
    if box is None:
        return None
    sizes = np.bincount(labels[box].ravel())
    sizes[0] = 0
    return Components(box, labels[box], sizes)


def kept_objects(sizes: np.ndarray, min_size: int, largest_only: bool = False) -> np.ndarray:
    """bool ``(n + 1,)``: the objects the size rule keeps (entry 0, the background, never):
    those of at least ``min_size`` pixels and, with ``largest_only``, only the first of the
    largest of them."""
    sizes = np.asarray(sizes)
    keep = sizes >= max(int(min_size), 1)
    keep[0] = False
    if largest_only:
        kept = np.where(keep, sizes, 0)
        keep = np.zeros(len(sizes), dtype=bool)
        if kept.max(initial=0) > 0:
            keep[int(np.argmax(kept))] = True
    return keep


def mask_of(components: Components, keep: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The bool mask ``shape`` of the objects ``keep`` (bool per label) of ``components``."""
    crop = np.asarray(keep)[components.labels]
    if crop.shape == tuple(shape):  # the box is the whole map
        return crop
    out = np.zeros(shape, dtype=bool)
    out[components.box] = crop
    return out


def remove_small_components(array: np.ndarray, min_size: int, *, largest_only: bool = False,
                            objects: str = "connected", components: Components | None = None) -> np.ndarray:
    """``array`` without its objects below ``min_size`` pixels (and, with ``largest_only``, all but
    the largest of the rest).

    ``objects="connected"``: ``array`` is a mask, its objects the 8-connected components; returns a
    bool mask. ``objects="labels"``: ``array`` is an instance label map, each nonzero value one
    object; returns the label map (its dtype) with the removed objects set to 0, not renumbered.
    ``components``: :func:`label_components` (or :func:`label_objects`) of ``array`` when the
    caller has it (several sizes on one mask share one labelling); the result is the same.
    """
    if objects not in OBJECTS:
        raise ValueError(f"unknown objects {objects!r}; expected one of {OBJECTS}")
    array = np.asarray(array, dtype=bool) if objects == "connected" else np.asarray(array)
    if min_size <= 1 and not largest_only:
        return array.copy()
    if components is None:
        components = label_components(array) if objects == "connected" else label_objects(array)
    if components is None:
        return array.copy()
    box, labels, sizes = components
    keep = kept_objects(sizes, min_size, largest_only)
    if objects == "connected":
        return mask_of(components, keep, array.shape)
    out = array.copy()
    out[box] = np.where(keep[labels], labels, 0)
    return out
