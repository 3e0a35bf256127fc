"""The DSB2018 submission: one run-length encoded row per predicted nucleus.

The competition scores instances, so each nucleus is its own row
``ImageId,EncodedPixels`` with the Kaggle RLE of its mask (1-based, column-major;
:mod:`plexus.io.rle`). Every test image must appear: an image with no
predicted nucleus gets one row with an empty ``EncodedPixels`` (written as an
empty CSV field), the usual way of saying "nothing here" on Kaggle. Nuclei of one
image must not share pixels (the metric assumes disjoint objects);
:func:`decode_submission` checks that on the way back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from plexus.io.rle import decode, encode

__all__ = ["decode_submission", "encode_instances", "submission_rows"]

COLUMNS = ["ImageId", "EncodedPixels"]


def encode_instances(label_map: np.ndarray) -> list[str]:
    """One RLE string per object (nonzero label), in ascending label order."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"expected a 2-D label map, got shape {label_map.shape}")
    values = np.unique(label_map)
    return [encode(label_map == v) for v in values[values != 0].tolist()]


def submission_rows(image_ids: Sequence[str], label_maps: Sequence[np.ndarray]) -> pd.DataFrame:
    """``ImageId, EncodedPixels``: a row per nucleus, or one empty row for an image without any."""
    if len(image_ids) != len(label_maps):
        raise ValueError(f"got {len(image_ids)} image ids and {len(label_maps)} label maps")
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("image ids are not unique")
    ids, pixels = [], []
    for image_id, label_map in zip(image_ids, label_maps):
        runs = encode_instances(label_map) or [""]
        ids += [image_id] * len(runs)
        pixels += runs
    return pd.DataFrame({"ImageId": ids, "EncodedPixels": pixels}, columns=COLUMNS)


def _is_empty(text) -> bool:
    return text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == ""


def decode_submission(frame: pd.DataFrame, shapes: Mapping[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Label map (int32) per image of ``shapes``: the image's rows numbered 1..N in file order.

    Raises ValueError for an image missing from the frame or not in ``shapes``, a bad
    RLE string, and two nuclei of one image that share pixels (naming the image, both
    CSV rows, counted from 1 after the header, and the number of shared pixels).
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"submission lacks column(s) {missing}")
    unknown = sorted(set(frame["ImageId"]) - set(shapes))
    if unknown:
        raise ValueError(f"{len(unknown)} image id(s) not in the test set, e.g. {unknown[:3]}")
    absent = sorted(set(shapes) - set(frame["ImageId"]))
    if absent:
        raise ValueError(f"{len(absent)} test image(s) have no row, e.g. {absent[:3]}")
    labels = {image_id: np.zeros(tuple(shape), dtype=np.int32) for image_id, shape in shapes.items()}
    first_row: dict[tuple[str, int], int] = {}  # (image, label) -> CSV row
    count = dict.fromkeys(shapes, 0)
    for row, (image_id, text) in enumerate(zip(frame["ImageId"], frame["EncodedPixels"]), start=1):
        if _is_empty(text):
            continue
        target = labels[image_id]
        try:
            mask = decode(str(text), target.shape).astype(bool)
        except ValueError as error:
            raise ValueError(f"row {row} (image {image_id}): {error}") from None
        shared = np.bincount(target[mask])
        shared[0] = 0
        if shared.any():
            other = int(np.argmax(shared > 0))
            raise ValueError(f"image {image_id}: rows {first_row[image_id, other]} and {row} overlap "
                             f"in {int(shared[other])} pixel(s)")
        count[image_id] += 1
        target[mask] = count[image_id]
        first_row[image_id, count[image_id]] = row
    return labels
