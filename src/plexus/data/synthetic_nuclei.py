"""A seeded synthetic stand-in for the Kaggle Data Science Bowl 2018 nuclei data.

:func:`generate_nuclei` writes the competition's layout, so the importer
(:mod:`plexus.data.dsb2018`) and everything after it run unchanged on it::

    out_dir/stage1_train/{id}/images/{id}.png     RGB or RGBA uint8
    out_dir/stage1_train/{id}/masks/{mask_id}.png one 0/255 grayscale PNG per nucleus
    out_dir/stage1_test/{id}/images/{id}.png

Ids are 64 hex digits (SHA-256 of the seed, split and index), like the real ids;
mask files are named the same way, so their sorted order is not their drawing
order, as in the real data.

Content, per image (``default_rng([seed, split, index])``): nuclei are ellipses with
a slightly wavy outline, all of one image near one typical radius (4-10 px, as one
magnification), about a third of them placed against an earlier one so that pairs
touch. Where a nucleus overlaps earlier ones it only takes the free pixels (and
the largest connected piece of them), so the instance masks are disjoint, as the
competition's are; a nucleus that would keep less than 12 pixels or lose more than
30% of itself is not drawn. The image shows each nucleus with its own brightness, a
smooth texture and a brighter centre, blurred and noised. Most images are
fluorescence-like (bright nuclei on a dark background, grey or lightly tinted); a
quarter of each split are H&E-like (dark purple nuclei on light pink tissue).
Image sizes cycle through ``sizes`` in a seeded order; polarity and channel count
(RGBA or RGB) are seeded too. 30 images take well under a second.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["generate_nuclei"]

EIGHT = np.ones((3, 3), dtype=bool)
SPLITS = ("stage1_train", "stage1_test")
HE_SHARE = 0.25  # share of dark-on-light (H&E-like) images per split
TOUCH_SHARE = 0.35  # share of placement attempts made against an earlier nucleus
MIN_PIXELS = 12  # a nucleus keeping fewer free pixels is not drawn
MAX_LOST = 0.3  # ... nor one that would lose more than this share of its ellipse to earlier ones
HE_BACKGROUND = np.array([0.93, 0.80, 0.88])  # light pink
HE_NUCLEUS = np.array([0.33, 0.18, 0.48])  # haematoxylin purple


def _hex_id(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _smooth_noise(rng, shape, sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (field - field.min()) / (np.ptp(field) + 1e-9)


def _ellipse(rng, shape, cy: float, cx: float, a: float, b: float):
    """Window slices, the wavy ellipse's mask and each pixel's normalised radius (0 centre, 1 outline)."""
    reach = int(np.ceil(max(a, b) * 1.15)) + 1
    y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, shape[0])
    x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    theta = np.arctan2(v, u)
    wave = 1 + 0.06 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi)) + 0.04 * np.sin(5 * theta + rng.uniform(0, 7))
    radius = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wave
    return (slice(y0, y1), slice(x0, x1)), radius <= 1, radius


def _place_nuclei(rng, shape) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint instance labels 1..N and a per-pixel normalised radius (for shading)."""
    labels = np.zeros(shape, dtype=np.int32)
    radial = np.ones(shape)
    typical = rng.uniform(4, 10)
    target = int(shape[0] * shape[1] * rng.uniform(0.12, 0.28) / (np.pi * typical ** 2 * 0.8))
    centres: list[tuple[float, float, float]] = []
    for _ in range(4 * max(target, 1)):
        if len(centres) >= target:
            break
        a = typical * rng.uniform(0.8, 1.25)
        b = a * rng.uniform(0.6, 1.0)
        if centres and rng.random() < TOUCH_SHARE:
            py, px, pr = centres[rng.integers(len(centres))]
            direction = rng.uniform(0, 2 * np.pi)
            gap = (pr + (a + b) / 2) * rng.uniform(0.8, 0.95)  # a little overlap: they touch
            cy, cx = py + gap * np.sin(direction), px + gap * np.cos(direction)
        else:
            cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        drawn = _ellipse(rng, shape, cy, cx, a, b)
        if drawn is None:
            continue
        window, inside, radius = drawn
        taken = inside & (labels[window] > 0)
        if not inside.any() or taken.sum() > MAX_LOST * inside.sum():
            continue
        pieces, n = ndimage.label(inside & ~taken, structure=EIGHT)
        if n == 0:
            continue
        largest = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        if largest.sum() < MIN_PIXELS:
            continue
        labels[window][largest] = len(centres) + 1
        radial[window][largest] = radius[largest]
        centres.append((cy, cx, (a + b) / 2))
    return labels, radial


def _render(rng, labels: np.ndarray, radial: np.ndarray, dark_on_light: bool) -> np.ndarray:
    """The image (H, W, 3) float in [0, 1] of the nuclei in ``labels``."""
    shape = labels.shape
    brightness = np.concatenate(([0.0], rng.uniform(0.45, 1.0, labels.max())))
    texture = _smooth_noise(rng, shape, rng.uniform(0.8, 1.6))
    signal = brightness[labels] * (0.75 + 0.25 * texture) * (1 - 0.3 * np.clip(radial, 0, 1) ** 2)
    signal = ndimage.gaussian_filter(signal, rng.uniform(0.6, 1.3))
    signal = np.clip(signal + rng.normal(0, 0.03, shape), 0, 1)
    if dark_on_light:
        tissue = 0.06 * (_smooth_noise(rng, shape, 4) - 0.5)
        background = np.clip(HE_BACKGROUND + tissue[..., None] + rng.normal(0, 0.01, 3), 0, 1)
        return background * (1 - signal[..., None]) + HE_NUCLEUS * signal[..., None]
    level = rng.uniform(0.02, 0.1) + 0.05 * _smooth_noise(rng, shape, 12)
    gray = np.clip(level + 0.9 * signal, 0, 1)
    tint = np.ones(3) if rng.random() < 0.7 else rng.uniform(0.6, 1.0, 3)  # most are grey
    return gray[..., None] * tint


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def _touching_pairs(labels: np.ndarray) -> int:
    """Number of distinct label pairs that are 8-neighbours."""
    pairs = set()
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        other = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
        touch = (centre > 0) & (other > 0) & (centre != other)
        pairs |= {tuple(sorted(p)) for p in zip(centre[touch].tolist(), other[touch].tolist())}
    return len(pairs)


def generate_nuclei(out_dir: str | os.PathLike, *, n_images: int = 24, n_test: int = 6,
                    sizes=((96, 96), (128, 160), (160, 128)), seed: int = 0) -> dict:
    """Write ``n_images`` training and ``n_test`` test images in the DSB2018 layout; return a summary.

    The summary maps each split to one record per image: image_id, height, width,
    channels, polarity ("fluorescence" or "he"), and for training images nuclei and
    touching_pairs. Refuses to write into a non-empty ``stage1_train``/``stage1_test``
    (a stale image left there would join the data set).
    """
    out_dir = Path(out_dir)
    for split in SPLITS:
        folder = out_dir / split
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty")
    sizes = [tuple(int(v) for v in s) for s in sizes]
    summary: dict[str, list[dict]] = {}
    for kind, (split, count) in enumerate(zip(SPLITS, (n_images, n_test))):
        split_rng = np.random.default_rng([seed, kind])
        size_of = split_rng.permutation(np.arange(count) % len(sizes))
        n_he = round(HE_SHARE * count) if count >= 2 else 0
        he = split_rng.permutation(count) < max(n_he, 1 if count >= 2 else 0)
        records = []
        for index in range(count):
            rng = np.random.default_rng([seed, kind, index])
            image_id = _hex_id("plexus-synthetic-nuclei", seed, split, index)
            labels, radial = _place_nuclei(rng, sizes[size_of[index]])
            rgb = np.round(_render(rng, labels, radial, bool(he[index])) * 255).astype(np.uint8)
            channels = 4 if rng.random() < 0.7 else 3
            if channels == 4:
                rgb = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
            sample = out_dir / split / image_id
            (sample / "images").mkdir(parents=True)
            _write_png(sample / "images" / f"{image_id}.png", rgb)
            record = {"image_id": image_id, "height": labels.shape[0], "width": labels.shape[1],
                      "channels": channels, "polarity": "he" if he[index] else "fluorescence"}
            if kind == 0:
                (sample / "masks").mkdir()
                for k in range(1, int(labels.max()) + 1):
                    mask = np.where(labels == k, 255, 0).astype(np.uint8)
                    _write_png(sample / "masks" / f"{_hex_id(image_id, k)}.png", mask)
                record.update(nuclei=int(labels.max()), touching_pairs=_touching_pairs(labels))
            records.append(record)
        summary[split] = records
    return summary
