"""Per-volume segmentation scores: Dice and the 95th-percentile Hausdorff distance (HD95) in millimetres.

Conventions (those of MONAI's ``compute_hausdorff_distance(..., percentile=95)``, which the BraTS and
Decathlon papers report):

* the *surface* of a mask is its voxels with a face neighbour (6-connectivity in 3-D) outside the mask;
  the array's border counts as outside, so a mask voxel on the border is a surface voxel. This is
  ``mask XOR binary_erosion(mask)``, MONAI's ``get_mask_edges``;
* HD95 is ``max(P95(d(pred surface -> truth surface)), P95(d(truth surface -> pred surface)))``: each
  surface voxel's Euclidean distance in mm (anisotropic ``spacing``) to the nearest surface voxel of
  the other mask, numpy's default (linear) percentile;
* both masks empty: Dice 1 and HD95 0 (nothing to find, nothing found); exactly one empty: Dice 0 and
  HD95 ``nan``, since no distance exists. BraTS tables substitute 373.13 mm (the diagonal of its
  volume); the caller decides what to report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["dice", "hd95", "surface", "volume_scores"]


def _bool(mask) -> np.ndarray:
    mask = np.asarray(mask)
    return mask if mask.dtype == np.bool_ else mask.astype(bool)


def _check_shapes(*arrays) -> None:
    shapes = {a.shape for a in arrays if a is not None}
    if len(shapes) > 1:
        raise ValueError(f"masks of different shapes: {sorted(shapes)}")


def dice(pred, truth, valid=None) -> float:
    """Dice ``2|P∩T| / (|P| + |T|)`` of two boolean volumes, over the ``valid`` voxels if given; 1 if both empty."""
    pred, truth = _bool(pred), _bool(truth)
    valid = None if valid is None else _bool(valid)
    _check_shapes(pred, truth, valid)
    if valid is not None:
        pred, truth = pred & valid, truth & valid
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(truth))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(pred & truth)) / total


def surface(mask) -> np.ndarray:
    """The surface voxels of a boolean mask: those with a face neighbour outside the mask or outside the array."""
    mask = _bool(mask)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def hd95(pred, truth, spacing) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm between the surfaces of two masks.

    ``spacing`` gives the voxel size along each axis. 0 when both masks are empty, ``nan`` when exactly
    one is (see the module's conventions).
    """
    pred, truth = _bool(pred), _bool(truth)
    _check_shapes(pred, truth)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} entries for {pred.ndim}-D masks")
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not has_pred and not has_truth:
        return 0.0
    if not has_pred or not has_truth:
        return float("nan")
    # Crop to the bounding box of both masks: every surface voxel and its nearest counterpart lie inside,
    # and a voxel on the box's border has its outside neighbour outside both masks, so nothing changes.
    nonzero = np.nonzero(pred | truth)
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in nonzero)
    surf_pred, surf_truth = surface(pred[box]), surface(truth[box])
    to_truth = ndimage.distance_transform_edt(~surf_truth, sampling=spacing)[surf_pred]
    to_pred = ndimage.distance_transform_edt(~surf_pred, sampling=spacing)[surf_truth]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def volume_scores(pred_labels, truth_labels, units: Mapping[str, Sequence[int]], spacing, valid=None) -> list[dict]:
    """Dice, HD95 and voxel counts per unit, a unit being the set of label values counted as its foreground.

    E.g. BraTS regions ``{"complete": [1, 2, 4], "core": [1, 4], "enhancing": [4]}``, or one label per
    class. With ``valid``, voxels outside it count as background in both volumes for every score.
    """
    pred_labels, truth_labels = np.asarray(pred_labels), np.asarray(truth_labels)
    valid = None if valid is None else _bool(valid)
    _check_shapes(pred_labels, truth_labels, valid)
    rows = []
    for unit, values in units.items():
        pred, truth = np.isin(pred_labels, list(values)), np.isin(truth_labels, list(values))
        if valid is not None:
            pred, truth = pred & valid, truth & valid
        rows.append({"unit": unit, "dice": dice(pred, truth), "hd95": hd95(pred, truth, spacing),
                     "truth_voxels": int(np.count_nonzero(truth)), "pred_voxels": int(np.count_nonzero(pred))})
    return rows
