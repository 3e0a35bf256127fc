"""Per-class scores of multi-class label maps, and the map between mask values and class indices.

Conventions:

* A *label map* is an integer array ``(H, W)`` of class indices ``0..K-1``; index 0 is the
  background. Scores are reported for the *foreground* classes ``1..K-1`` only, so every
  per-class array has length ``K - 1`` and its entry ``i`` is class ``i + 1``.
* Classes come from the config as an ordered mapping name -> mask value, e.g.
  ``{"background": 0, "nerve": 128, "artery": 255}``: class index ``i`` is the ``i``-th entry,
  :func:`class_table` splits it into names and values, :func:`to_class_index` turns a mask
  file's pixel values into indices and :func:`from_class_index` turns indices back into values.
* A class value may also be a colour ``[r, g, b]`` (a colour-coded mask; then every value is
  one): the mask is then read as RGB and each pixel's colour names its class.
* A truth pixel of index :data:`plexus.labels.IGNORE_LABEL` (a class the config ignores) counts
  in no score: it is left out of every count below, whatever was predicted there.
* Each foreground class is scored one against the rest, from pixel counts: ``tp`` (predicted c,
  truly c), ``fp`` (predicted c, truly another class), ``fn`` (truly c, predicted another class).
  ``true_area = tp + fn`` and ``pred_area = tp + fp``.
* When a denominator is zero:

  - ``dice = 2 tp / (pred_area + true_area)`` and ``iou = tp / (pred_area + true_area - tp)`` are
    1 when the class is absent from both prediction and truth (Kaggle's empty/empty
    convention) and 0 when it is in exactly one of them (that already follows from the formula);
  - ``sensitivity = tp / true_area`` is NaN when the class is absent from the truth (nothing to find:
    undefined, not perfect), ``precision = tp / pred_area`` NaN when absent from the prediction.
    Averages over images should skip the NaNs (``DataFrame.mean`` does).

  These differ on purpose from the binary :func:`plexus.evaluation.metrics.per_image_metrics`, which
  scores sensitivity and precision 1 on an empty denominator: with several classes most classes are
  absent from most images, and a 1 there would swamp the mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from plexus.labels import IGNORE_LABEL

__all__ = [
    "SCORE_COLUMNS",
    "class_counts",
    "class_scores",
    "class_table",
    "from_class_index",
    "scores_frame",
    "scores_from_counts",
    "snap_to_values",
    "to_class_index",
]

#: The columns of :func:`scores_frame`, in order.
SCORE_COLUMNS = ("image_id", "class", "dice", "iou", "sensitivity", "precision", "true_area", "pred_area")
#: Class indices are stored as uint8.
MAX_CLASSES = 256


def class_table(classes: Mapping[str, int]) -> tuple[list[str], list]:
    """``(names, values)`` of the config's ordered mapping class name -> mask value, checked.

    At least two classes (the background and one more), distinct non-negative integer values
    below 2**16 or distinct ``[r, g, b]`` colours (0..255 each), at most :data:`MAX_CLASSES`
    classes.
    """
    names = [str(name) for name in classes]
    values = _check_values(list(classes.values()))
    if len(names) < 2:
        raise ValueError(f"expected the background and at least one class, got {names}")
    return names, values.tolist()


def is_colour(values) -> bool:
    """True when the class values are colours (``[r, g, b]`` each)."""
    return bool(len(values)) and all(isinstance(v, (list, tuple, np.ndarray)) for v in values)


def _check_values(values: Sequence[int]) -> np.ndarray:
    """The mask values as int64 ``(K,)`` (distinct integers in 0..65535) or ``(K, 3)`` colours."""
    if is_colour(values):
        array = np.asarray([list(v) for v in values], dtype=object)
        if array.ndim != 2 or array.shape[1] != 3 or not all(isinstance(x, (int, np.integer)) for x in array.ravel()):
            raise ValueError(f"colour class values must be [r, g, b] integer triples, got {values!r}")
        array = array.astype(np.int64)
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"colour class values must lie in 0..255, got {array.tolist()}")
        if len(np.unique(array, axis=0)) != len(array):
            raise ValueError(f"colour class values must be distinct, got {array.tolist()}")
        if len(array) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes, got {len(array)}")
        return array
    array = np.asarray(values)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"expected a non-empty list of mask values, got {values!r}")
    if array.dtype.kind not in "iub" and not (array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0)):
        raise ValueError(f"mask values must be integers, got {values!r}")
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"mask values must lie in 0..65535, got {array.tolist()}")
    if len(np.unique(array)) != len(array):
        raise ValueError(f"mask values must be distinct, got {array.tolist()}")
    if len(array) > MAX_CLASSES:
        raise ValueError(f"at most {MAX_CLASSES} classes, got {len(array)}")
    return array


def _confusion(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 pixel counts: entry ``[p, t]`` counts pixels predicted ``p`` whose truth is ``t``."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2 (the background and a class), got {n_classes}")
    for name, array in (("prediction", pred), ("truth", true)):
        if array.dtype.kind not in "iub":
            raise ValueError(f"the {name} must be an integer label map, got {array.dtype}")
    valid = None
    if true.size and int(true.max()) == IGNORE_LABEL and n_classes <= IGNORE_LABEL:
        valid = true.ravel() != IGNORE_LABEL
    for name, array in (("prediction", pred), ("truth", true[true != IGNORE_LABEL] if valid is not None else true)):
        if array.size and (int(array.min()) < 0 or int(array.max()) >= n_classes):
            raise ValueError(f"the {name} holds class indices {int(array.min())}..{int(array.max())}, "
                             f"expected 0..{n_classes - 1}")
    combined = pred.astype(np.intp).ravel()
    combined *= n_classes
    combined += true.ravel()
    if valid is not None:
        combined = combined[valid]
    return np.bincount(combined, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_counts(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K-1, 4)`` int64: ``tp, fp, fn, true_area`` of each foreground class (``pred_area = tp + fp``)."""
    matrix = _confusion(pred, true, n_classes)
    tp = np.diagonal(matrix)[1:]
    pred_area = matrix.sum(axis=1)[1:]
    true_area = matrix.sum(axis=0)[1:]
    return np.stack([tp, pred_area - tp, true_area - tp, true_area], axis=1).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray, empty_value: float) -> np.ndarray:
    out = np.full(num.shape, empty_value, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`class_scores` from :func:`class_counts`' ``(..., 4)`` counts (any leading shape)."""
    counts = np.asarray(counts, dtype=np.int64)
    tp, fp, true_area = counts[..., 0], counts[..., 1], counts[..., 3]
    pred_area = tp + fp
    tpf = tp.astype(np.float64)
    both = (pred_area + true_area).astype(np.float64)
    return {
        "dice": _ratio(2 * tpf, both, 1.0),
        "iou": _ratio(tpf, both - tpf, 1.0),
        "sensitivity": _ratio(tpf, true_area.astype(np.float64), np.nan),
        "precision": _ratio(tpf, pred_area.astype(np.float64), np.nan),
        "true_area": true_area,
        "pred_area": pred_area,
    }


def class_scores(pred: np.ndarray, true: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Dice, IoU, sensitivity, precision, true and predicted area of each foreground class, ``(K-1,)`` each.

    See the module doc for the conventions on empty classes (Dice and IoU 1 on empty/empty,
    sensitivity NaN without truth, precision NaN without prediction).
    """
    return scores_from_counts(class_counts(pred, true, n_classes))


def scores_frame(image_ids: Iterable, preds_iter: Iterable[np.ndarray], trues_iter: Iterable[np.ndarray],
                 class_names: Sequence[str]) -> pd.DataFrame:
    """Long-format scores: one row per (image, foreground class), columns :data:`SCORE_COLUMNS`.

    ``class_names`` lists all ``K`` classes in index order, the background first (it gets no
    rows). The three iterables are consumed together, one image at a time, and must have the
    same length.
    """
    names = [str(name) for name in class_names]
    n_classes = len(names)
    if n_classes < 2:
        raise ValueError(f"expected the background and at least one class, got {names}")
    ids, counts = [], []
    for image_id, pred, true in zip(image_ids, preds_iter, trues_iter, strict=True):
        ids.append(image_id)
        counts.append(class_counts(pred, true, n_classes))
    foreground = n_classes - 1
    stacked = np.stack(counts) if counts else np.zeros((0, foreground, 4), dtype=np.int64)
    scores = scores_from_counts(stacked.reshape(-1, 4))
    frame = pd.DataFrame({
        "image_id": np.repeat(np.asarray(ids, dtype=object), foreground),
        "class": np.tile(np.asarray(names[1:], dtype=object), len(ids)),
        **scores,
    })
    return frame[list(SCORE_COLUMNS)]


def _packed(mask: np.ndarray) -> np.ndarray:
    """An RGB ``(H, W, 3)`` (or gray ``(H, W)``, read as ``(v, v, v)``) uint8 mask as one int per pixel."""
    mask = np.asarray(mask)
    if mask.ndim == 2:
        return mask.astype(np.int64) * 65793
    return (mask[..., 0].astype(np.int64) << 16) | (mask[..., 1].astype(np.int64) << 8) | mask[..., 2]


def _unpack(value: int) -> list[int]:
    return [int(value) >> 16 & 255, int(value) >> 8 & 255, int(value) & 255]


def snap_to_values(mask: np.ndarray, values: Sequence, ignore: Sequence = ()) -> tuple[np.ndarray, float]:
    """A lossy (JPEG) mask with each pixel moved to the nearest of the class (and ignore) values;
    and the share of pixels that moved. Colours: the nearest in RGB (squared distance); ties go to
    the first value in class order."""
    values = list(values) + list(ignore)
    allowed = _check_values(values)
    mask = np.asarray(mask)
    if allowed.ndim == 2:
        rgb = np.repeat(mask[..., None], 3, axis=2) if mask.ndim == 2 else mask[..., :3]
        distance = ((rgb[..., None, :].astype(np.int64) - allowed[None, None]) ** 2).sum(-1)
        snapped = allowed[distance.argmin(-1)].astype(np.uint8)
        changed = (snapped != rgb).any(-1)
    else:
        if mask.ndim != 2:
            raise ValueError(f"expected a 2-D (single-channel) mask, got shape {mask.shape}")
        distance = np.abs(mask[..., None].astype(np.int64) - allowed)
        snapped = allowed[distance.argmin(-1)].astype(mask.dtype if allowed.max() <= np.iinfo(mask.dtype).max
                                                      else np.uint16)
        changed = snapped != mask
    return snapped, float(changed.mean()) if changed.size else 0.0


def to_class_index(mask: np.ndarray, values: Sequence[int], where: str, ignore: Sequence = ()) -> np.ndarray:
    """The uint8 label map ``(H, W)`` of a mask whose pixels hold the class values ``values`` (index order).

    A pixel holding one of ``ignore`` (values of ignored classes) becomes :data:`IGNORE_LABEL`.
    Colour values (``[r, g, b]`` each) match an RGB mask pixel by pixel (a gray mask reads as
    ``(v, v, v)``). A pixel value that is not one of ``values`` raises ValueError naming ``where``
    (the mask's file), up to five of the offending values and the allowed ones.
    """
    mask = np.asarray(mask)
    n_classes = len(values)
    allowed = _check_values(list(values) + list(ignore))
    if allowed.ndim == 2:
        if not (mask.ndim == 2 or (mask.ndim == 3 and mask.shape[2] == 3)) or mask.dtype != np.uint8:
            raise ValueError(f"{where}: colour classes need an 8-bit RGB or gray mask, got {mask.dtype} {mask.shape}")
        packed = (allowed[:, 0] << 16) | (allowed[:, 1] << 8) | allowed[:, 2]
        index = _lookup(_packed(mask), packed, where, shown=_unpack)
    else:
        if mask.ndim == 3 and mask.shape[2] >= 3:
            raise ValueError(f"{where}: an RGB mask whose channels differ (a colour-coded mask): give the classes "
                             "as colours ([r, g, b] values), or save the mask with one channel")
        if mask.ndim != 2:
            raise ValueError(f"{where}: expected a 2-D (single-channel) mask, got shape {mask.shape}")
        index = _lookup(mask, allowed, where)
    if len(allowed) > n_classes:
        index[index >= n_classes] = IGNORE_LABEL
    return index


def _lookup(mask: np.ndarray, allowed: np.ndarray, where: str, shown=int) -> np.ndarray:
    """The index in ``allowed`` of every pixel of ``mask`` (uint8); a value not in it is a ValueError."""
    if mask.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D (single-channel) mask, got shape {mask.shape}")
    if mask.dtype.kind not in "iub":
        raise ValueError(f"{where}: expected an integer mask, got {mask.dtype}")
    if mask.dtype.kind == "b":
        mask = mask.view(np.uint8)
    if mask.dtype.kind == "u" and mask.dtype.itemsize <= 2:
        # a lookup table over every value the dtype can hold; -1 marks values that are no class
        table = np.full(1 << (8 * mask.dtype.itemsize), -1, dtype=np.int16)
        fits = allowed < len(table)
        table[allowed[fits]] = np.flatnonzero(fits)
        index = table[mask]
        bad = index < 0
    else:
        order = np.argsort(allowed, kind="stable")
        ordered = allowed[order]
        position = np.clip(np.searchsorted(ordered, mask), 0, len(ordered) - 1)
        bad = ordered[position] != mask
        index = order[position]
    if bad.any():
        offending = np.unique(mask[bad])
        listed = ", ".join(str(shown(v)) for v in offending[:5].tolist())
        more = f" and {len(offending) - 5} more" if len(offending) > 5 else ""
        raise ValueError(f"{where}: mask values {listed}{more} are not class values; "
                         f"allowed: {[shown(v) for v in allowed.tolist()]}")
    return index.astype(np.uint8)


def from_class_index(label: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """The mask of a label map: class index ``i`` becomes ``values[i]``; uint8 if every value fits, else uint16."""
    label = np.asarray(label)
    allowed = _check_values(values)
    if label.dtype.kind not in "iub":
        raise ValueError(f"expected an integer label map, got {label.dtype}")
    if label.size and (int(label.min()) < 0 or int(label.max()) >= len(allowed)):
        raise ValueError(f"the label map holds class indices {int(label.min())}..{int(label.max())}, "
                         f"but only {len(allowed)} values are given")
    dtype = np.uint8 if allowed.max() <= np.iinfo(np.uint8).max else np.uint16
    return allowed.astype(dtype)[label]  # colours: (H, W, 3)
