"""Cost of each post-processing candidate per 420x580 map, against the plain cutoff + minimum area.

The baseline is what tuning and the submission do without candidates: threshold one
upsampled map and count its pixels (``PostProcess(cutoff, min_area).apply``, no
connected components). Every candidate but ``otsu`` needs per-image connected
components (``scipy.ndimage.label``), so it cannot be folded into tuning's single
histogram pass; ``otsu`` needs a per-image histogram. Maps: a smooth nerve-like blob
plus speckle, as a trained model's probabilities look; best of ``--repeats`` passes.

``--library`` times, in the same run, each hand-written routine that scikit-image and scipy
replaced (kept below as ``old_*``, as they were before) against what plexus calls now and the
plain library call, on the speckled maps (the foreground box is the whole map) and on clean
maps (the blob alone: a small box, as on real OOF maps), and says whether the masks are equal.

    .venv/bin/python benchmarks/bench_postprocess.py
    .venv/bin/python benchmarks/bench_postprocess.py --library
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy import ndimage

from plexus.postprocess import candidates
from plexus.postprocess.candidates import PostProcess
from plexus.postprocess.components import EIGHT, foreground_box

ROWS, COLS = 420, 580  # the Kaggle nerve images


def maps(n: int, seed: int = 0, speckle: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r, c = np.ogrid[:ROWS, :COLS]
    out = np.empty((n, ROWS, COLS), np.float32)
    for i in range(n):
        cy, cx = rng.uniform([120, 150], [300, 430])
        blob = np.exp(-(((r - cy) / 40) ** 2 + ((c - cx) / 60) ** 2))
        noise = rng.random((ROWS, COLS)) ** 6 * 0.7
        out[i] = np.clip(blob * rng.uniform(0.3, 1.0) + (noise if speckle else 0), 0, 1)
    return out


# --- the hand-written routines as they were before scikit-image and scipy replaced them -------------------


def old_otsu(prob, bins=256):
    values = np.asarray(prob, dtype=np.float64).ravel()
    hist = np.bincount(np.clip((values * bins).astype(np.int64), 0, bins - 1), minlength=bins).astype(np.float64)
    centers = (np.arange(bins) + 0.5) / bins
    weight_low = np.cumsum(hist)[:-1]
    weight_high = hist.sum() - weight_low
    mass_low = np.cumsum(hist * centers)[:-1]
    mass_high = (hist * centers).sum() - mass_low
    valid = (weight_low > 0) & (weight_high > 0)
    if not valid.any():
        return 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        between = weight_low * weight_high * (mass_low / weight_low - mass_high / weight_high) ** 2
    return float((np.argmax(np.where(valid, between, -1.0)) + 1) / bins)


def old_labelled(mask):
    box = foreground_box(mask)
    if box is None:
        return None
    labels, n = ndimage.label(mask[box], structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return box, labels, sizes


def _paint(shape, box, crop):
    if crop.shape == tuple(shape):
        return crop
    out = np.zeros(shape, dtype=bool)
    out[box] = crop
    return out


def old_hysteresis(prob, low, high):
    mask = prob > low
    box = foreground_box(mask)
    if box is None:
        return np.zeros(prob.shape, dtype=bool)
    labels, n = ndimage.label(mask[box], structure=EIGHT)
    seeded = np.bincount(labels[prob[box] > high], minlength=n + 1) > 0
    seeded[0] = False
    return _paint(prob.shape, box, seeded[labels])


def old_remove_small(mask, min_size):
    components = old_labelled(mask)
    if components is None:
        return np.zeros(mask.shape, dtype=bool)
    box, labels, sizes = components
    return _paint(mask.shape, box, (sizes >= max(min_size, 1))[labels])


def old_fill_holes(mask):
    box = foreground_box(mask)
    if box is None:
        return mask.copy()
    crop = mask[box]
    labels, n = ndimage.label(~crop)
    outside = np.zeros(n + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = True
    out = mask.copy()
    out[box] = crop | ~outside[labels]
    return out


def library_rows():
    """(routine, old, now, plain library call) on a probability map: functions of one map."""
    from skimage.filters import apply_hysteresis_threshold, threshold_otsu
    from skimage.measure import label as sk_label
    from skimage.morphology import remove_small_objects

    def sk_hysteresis8(prob, low, high):  # 8-connected components of > low holding a pixel > high
        labels = sk_label(prob > low, connectivity=2)
        seeded = np.bincount(labels[prob > high], minlength=labels.max() + 1) > 0
        seeded[0] = False
        return seeded[labels]

    return [
        ("otsu", lambda p: p > old_otsu(p), lambda p: p > candidates.otsu_threshold(p),
         "skimage threshold_otsu", lambda p: p > threshold_otsu(p)),
        ("hysteresis 0.5/0.8", lambda p: old_hysteresis(p, 0.5, 0.8), lambda p: candidates.hysteresis(p, 0.5, 0.8),
         "scipy binary_propagation (8-conn.)",
         lambda p: ndimage.binary_propagation(p > 0.8, structure=EIGHT, mask=p > 0.5)),
        ("hysteresis 0.5/0.8", None, None, "skimage label(connectivity=2) + seeds",
         lambda p: sk_hysteresis8(p, 0.5, 0.8)),
        ("hysteresis 0.5/0.8", None, None, "skimage apply_hysteresis (4-conn.)",
         lambda p: apply_hysteresis_threshold(p, 0.5, 0.8)),
        ("remove_small 500", lambda p: old_remove_small(p > 0.5, 500),
         lambda p: candidates.remove_small_components(p > 0.5, 500),
         "skimage remove_small_objects (8-conn.)",
         lambda p: remove_small_objects(p > 0.5, max_size=499, connectivity=2)),
        ("fill_holes", lambda p: old_fill_holes(p > 0.5), lambda p: candidates.fill_holes(p > 0.5),
         "scipy binary_fill_holes", lambda p: ndimage.binary_fill_holes(p > 0.5)),
        ("fill_holes", None, None, "scipy binary_fill_holes on the box", lambda p: boxed_fill_holes(p > 0.5)),
    ]


def boxed_fill_holes(mask):
    """scipy's binary_fill_holes on the foreground's bounding box only (the same result)."""
    box = foreground_box(mask)
    out = mask.copy()
    if box is not None:
        out[box] = ndimage.binary_fill_holes(mask[box])
    return out


def time_per_map(function, probs, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for prob in probs:
            function(prob)
        times.append(time.perf_counter() - start)
    return min(times) / len(probs)


def library(n: int, repeats: int) -> None:
    print(f"{n} maps {ROWS}x{COLS} per kind, best of {repeats}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'maps':9s} {'routine':20s} {'old ms':>7s} {'now ms':>7s} {'now/old':>8s}  "
          f"{'library call':38s} {'lib ms':>7s} {'lib/old':>8s}  same masks (now, library)")
    for kind, probs in (("speckled", maps(n)), ("clean", maps(n, speckle=False))):
        previous = None
        for routine, old, now, name, plain in library_rows():
            if old is not None:
                previous = (time_per_map(old, probs, repeats), time_per_map(now, probs, repeats), old, now)
            old_s, now_s, old, now = previous
            lib_s = time_per_map(plain, probs, repeats)
            same_now = all(np.array_equal(old(p), now(p)) for p in probs)
            same_lib = all(np.array_equal(old(p), plain(p)) for p in probs)
            print(f"{kind:9s} {routine:20s} {1000 * old_s:7.2f} {1000 * now_s:7.2f} {now_s / old_s:7.2f}x  "
                  f"{name:38s} {1000 * lib_s:7.2f} {lib_s / old_s:7.2f}x  {same_now}, {same_lib}")


def best_time(pipeline: PostProcess, probs: np.ndarray, repeats: int, images: np.ndarray) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for prob, image in zip(probs, images):
            pipeline.apply(prob, 0.9, image)
        times.append(time.perf_counter() - start)
    return min(times) / len(probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--library", action="store_true",
                        help="the library routines against the hand-written ones they replaced")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.library:
        library(args.maps, args.repeats)
        return
    probs = maps(args.maps)
    images = (probs * 200 + 20).astype(np.uint8)  # the CRF's image: any grey image costs the same
    base = PostProcess(cutoff=0.5, min_area=1000)
    rows = [
        ("cutoff + min area (baseline)", base, "no"),
        ("presence gate", base.with_changes(presence_threshold=0.5), "no"),
        ("tta (another map, same steps)", base.with_changes(tta=True), "no"),
        ("crf (dense CRF at scale 4)", base.with_changes(crf=True), "no (a CRF per image)"),
        ("otsu", base.with_changes(otsu=True), "no (a histogram)"),
        ("hysteresis 0.8", base.with_changes(hysteresis_high=0.8), "yes"),
        ("remove_small 500", base.with_changes(remove_below=500), "yes"),
        ("largest_component", base.with_changes(largest_only=True), "yes"),
        ("fill_holes", base.with_changes(fill_holes=True), "yes"),
        ("all of them", base.with_changes(hysteresis_high=0.8, remove_below=500, largest_only=True,
                                          fill_holes=True), "yes"),
    ]
    baseline = best_time(base, probs, args.repeats, images)
    print(f"{args.maps} maps {ROWS}x{COLS}, best of {args.repeats}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'pipeline':32s} {'ms/map':>8s} {'vs baseline':>12s}  components")
    for name, pipeline, components in rows:
        seconds = baseline if pipeline == base else best_time(pipeline, probs, args.repeats, images)
        print(f"{name:32s} {1000 * seconds:8.2f} {seconds / baseline:11.2f}x  {components}")


if __name__ == "__main__":
    main()
