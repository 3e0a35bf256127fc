"""The binary submission: ensemble test probabilities, post-process, run-length encode (Kaggle's format)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from plexus.data.resize import image_shapes, uniform_runs, upsample_mean
from plexus.data.truth import read_gray
from plexus.io.atomic import atomic_path
from plexus.io.rle import encode
from plexus.postprocess.candidates import PostProcess
from plexus.postprocess.tuning import postprocess

#: Images upsampled at once: small batches keep the 420x580 maps in cache (about 2x faster than 64).
_CHUNK = 8


def encode_masks(members: list[np.ndarray], cutoff: float, min_area: int, *, shape, batch_size: int = 64,
                 pipeline: PostProcess | None = None, presence=None,
                 image_paths=None, crf_settings: dict | None = None) -> list[str]:
    """RLE strings of the post-processed ensemble masks, one per row of the members.

    ``shape``: the images' own size, one ``(H, W)`` or one per image (the manifest's ``height``
    and ``width``); each map is upsampled to it and encoded there. At most ``batch_size``
    images (fewer: 8) of one size are upsampled at a time. ``pipeline``
    (a :class:`PostProcess` decided on OOF) replaces ``cutoff``/``min_area`` when
    given; its presence gate uses ``presence`` (n,), the members' averaged presence.
    The members are the maps the pipeline reads (flip-averaged ones for ``tta``: the
    caller's choice). A ``crf`` pipeline reads each image from ``image_paths``.
    Pipelines without per-image steps take the vectorised path.
    """
    pipeline = pipeline or PostProcess(cutoff=float(cutoff), min_area=int(min_area))
    if pipeline.crf and image_paths is None:
        raise ValueError("a crf pipeline needs the test images (image_paths)")
    n = len(members[0])
    step = max(1, min(batch_size, _CHUNK))
    pixels = []
    for lo, hi, size in uniform_runs(image_shapes(shape, n), step):
        prob = upsample_mean([m[lo:hi] for m in members], size)
        gates = [None] * len(prob) if presence is None else np.asarray(presence[lo:hi], dtype=np.float64)
        if pipeline.needs_components:
            images = [read_gray(path) for path in image_paths[lo:hi]] if pipeline.crf else [None] * len(prob)
            masks = [pipeline.apply(p, g, image, crf_settings) for p, g, image in zip(prob.numpy(), gates, images)]
        else:
            masks = postprocess(prob, pipeline.cutoff, pipeline.min_area).numpy()
            if pipeline.presence_threshold is not None and presence is not None:
                masks[np.asarray(gates) < pipeline.presence_threshold] = False
        pixels += [encode(mask) for mask in masks]
    return pixels


def submission_frame(image_ids, pixels) -> pd.DataFrame:
    """``img,pixels``: the image ids as text, sorted by number when every id is a plain number
    (Kaggle's ``N.tif``), else in the manifest's order (``0007`` stays ``0007``)."""
    ids = [str(i) for i in image_ids]
    frame = pd.DataFrame({"img": ids, "pixels": list(pixels)}, dtype=object)
    if all(i.isdigit() and i == str(int(i)) for i in ids):
        frame = frame.iloc[np.argsort([int(i) for i in ids], kind="stable")]
    return frame.reset_index(drop=True)


def write_submission(frame: pd.DataFrame, path: str | os.PathLike) -> dict:
    """Write the CSV atomically and return its summary (rows, empty count, bytes)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
        size = tmp.stat().st_size
    return {"rows": int(len(frame)), "empty": int((frame["pixels"] == "").sum()), "bytes": int(size)}
