"""Additive Gaussian noise on 8- or 16-bit images in their native units, seeded per image.

Used at training time (a clean+noisy mix) and at prediction time (robustness
study). Every image gets its own ``numpy.random.default_rng(seed)``, so the noise
of an image does not depend on which other images are processed with it (batch
size, order, subset).
"""

from __future__ import annotations

import zlib

import numpy as np


def image_seed(base_seed: int, sigma: float, image_id) -> int:
    """A stable 32-bit seed for one image from ``(base_seed, sigma, image_id)``.

    CRC32 of a canonical string, so it is the same in every process and Python
    version (unlike ``hash``).
    """
    return zlib.crc32(f"{int(base_seed)}|{float(sigma)!r}|{image_id}".encode())


def add_gaussian_noise(images: np.ndarray, sigma: float, seeds) -> np.ndarray:
    """Add N(0, sigma^2) noise in the images' native units to each image; round, clip to the dtype's range.

    ``images`` uint8 or uint16, (N, H, W) or (N, C, H, W) (or (H, W) with one seed);
    ``seeds`` one integer per image. The noise is in the native bit depth: sigma 20 on
    8-bit images, 5000 on 16-bit ones (the X-ray study's). Returns a new array of the
    same dtype; ``sigma == 0`` returns an unchanged copy.
    """
    images = np.asarray(images)
    if images.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"images must be uint8 or uint16, got {images.dtype}")
    top = np.iinfo(images.dtype).max
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    single = images.ndim == 2
    batch = images[None] if single else images
    seeds = np.atleast_1d(np.asarray(seeds))
    if len(seeds) != len(batch):
        raise ValueError(f"need one seed per image: {len(seeds)} seeds for {len(batch)} images")
    out = batch.copy()
    if sigma == 0:
        return out[0] if single else out
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        noisy = batch[i].astype(np.float32) + rng.normal(0.0, sigma, size=batch[i].shape).astype(np.float32)
        out[i] = np.clip(np.rint(noisy), 0, top).astype(images.dtype)
    return out[0] if single else out
