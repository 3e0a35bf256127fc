"""Resizing between each image's own size and model input sizes.

:func:`upsample` is *the* way probabilities return to an image's own size (the manifest's
``height`` and ``width``): tuning and the submission both call it, so the tuned cutoff and
minimum area mean the same thing in both places. Bilinear interpolation is linear, so
averaging probabilities of several folds before or after upsampling gives the same result.
Images of one dataset may have several sizes: :func:`uniform_runs` cuts a row range into
batches of one size each, so every stage that upsamples a batch does it at one shape.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def parse_size(size: str | list | tuple) -> tuple[int, int]:
    """``"64x80"`` or ``[64, 80]`` -> ``(64, 80)``."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"size must look like HxW (e.g. 64x80), got {size!r}")
        return int(parts[0]), int(parts[1])
    h, w = size
    return int(h), int(w)


def size_name(size) -> str:
    h, w = parse_size(size)
    return f"{h}x{w}"


def _interpolate(stack: np.ndarray, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)[:, 0]


def resize_images(images: np.ndarray, size) -> np.ndarray:
    """Resize uint8 or uint16 images (N, H, W) to ``size`` with antialiased bilinear filtering.

    The result keeps the dtype: rounded and clipped to its range (any (N, H, W) stack, also
    the channels of one image).
    """
    size = parse_size(size)
    if images.shape[1:] == size:
        return images.copy()
    out = _interpolate(images, size, antialias=True)
    return out.round_().clamp_(0, np.iinfo(images.dtype).max).numpy().astype(images.dtype)


def upsample(prob: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """Upsample probabilities (N, h, w) to ``shape``; returns a float32 tensor (N, *shape)."""
    if prob.shape[1:] == tuple(shape):
        return torch.from_numpy(np.asarray(prob, dtype=np.float32))
    return _interpolate(prob, tuple(shape), antialias=False).clamp_(0.0, 1.0)


def upsample_mean(members: list[np.ndarray], shape: tuple[int, int]) -> torch.Tensor:
    """Average several models' probabilities for the same images at ``shape``.

    Members may have different input sizes (an ensemble of 128x160 and 192x240
    models); each is upsampled, then they are averaged with equal weights.
    """
    total = None
    for prob in members:
        up = upsample(prob, shape)
        if total is None and len(members) > 1 and np.shares_memory(up.numpy(), np.asarray(prob)):
            up = up.clone()  # a float32 map already at ``shape`` is a view: never add into the caller's array
        total = up if total is None else total.add_(up)
    return total if len(members) == 1 else total.div_(len(members))  # x / 1 == x: skip the pass


def image_shapes(shape, n: int) -> np.ndarray:
    """``(n, 2)`` int64 rows of each image's ``(height, width)``: ``shape`` is one ``(h, w)`` for
    every image, or already one row per image."""
    shapes = np.asarray(shape, dtype=np.int64)
    if shapes.shape == (2,):
        return np.tile(shapes, (n, 1))
    if shapes.shape != (n, 2):
        raise ValueError(f"shapes must be one (height, width) or {n} of them, got an array of shape {shapes.shape}")
    return shapes


def uniform_runs(shapes, batch_size: int):
    """``(lo, hi, (h, w))``: row ranges of at most ``batch_size`` consecutive images of one shape
    ``(h, w)`` each.

    With one shape for all images these are the plain ``range(0, n, batch_size)`` batches, so a
    dataset of one size is batched (and summed) exactly as before sizes could differ.
    """
    shapes = np.asarray(shapes)
    n, lo = len(shapes), 0
    while lo < n:
        hi = min(lo + batch_size, n)
        same = np.all(shapes[lo:hi] == shapes[lo], axis=1)
        hi = lo + (int(np.argmin(same)) if not same.all() else hi - lo)
        yield lo, hi, (int(shapes[lo][0]), int(shapes[lo][1]))
        lo = hi
