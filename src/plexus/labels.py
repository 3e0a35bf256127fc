"""The label-map convention shared by every stage that reads class targets.

A preprocessed class mask (``masks`` in ``train.npz`` of the classes workflow) is a
``uint8`` map of class indices ``0 .. n_classes - 1``. Pixels that a dataset marks
as unlabelled (the config's ``ignore:`` classes, e.g. CamVid's void or VOC's 255)
hold :data:`IGNORE_LABEL` instead: they count in no loss, metric, area, tuning or
bootstrap, and label maps write them as background.

Classes come from the config as an ordered mapping name -> mask value (an integer, or a colour
``[r, g, b]``): class index ``i`` is the ``i``-th entry. :func:`class_table` checks and splits it,
:func:`to_class_index` turns a mask file's pixel values into indices (:func:`snap_to_values`
first for a lossy mask) and :func:`from_class_index` turns indices back into values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Class index of an ignored pixel in a preprocessed label map (never a real class: at most
#: 255 classes are allowed).
IGNORE_LABEL = 255


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
    if mask.dtype == np.uint8 and len(allowed) < 255:
        # 8-bit masks (most): a uint8 table, 255 marking values that are no class (3x faster than int16)
        table = np.full(256, 255, dtype=np.uint8)
        fits = allowed < 256
        table[allowed[fits]] = np.flatnonzero(fits)
        index = np.take(table, mask)
        bad = index == 255
    elif mask.dtype.kind == "u" and mask.dtype.itemsize <= 2:
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


def region_matrix(regions: dict, class_names):
    """``(R, K)`` bool: row ``r`` marks the classes (of ``class_names``, in order) that region ``r`` of
    ``regions`` (name -> class names, in the config's order) unites. An unknown class is a
    ``ValueError`` naming the region."""
    names = list(class_names)
    matrix = np.zeros((len(regions), len(names)), dtype=bool)
    for r, (region, members) in enumerate(regions.items()):
        unknown = [m for m in members if m not in names]
        if unknown:
            raise ValueError(f"regions.{region}: {', '.join(map(repr, unknown))} not a learnt class ({names})")
        matrix[r, [names.index(m) for m in members]] = True
    return matrix
