"""Nuclei instance post-processing: the hand-written image processing against scikit-image's, on the same maps.

plexus.postprocess.instances used to carry its own watershed (seeds at the distance
maxima, a level-by-level flood by 3x3 grey dilation), small-object removal and
relabelling, and took Otsu and hysteresis from plexus.postprocess.candidates (the
nerve candidates, which keep them). It now calls scikit-image 0.26.0. The old
routines are copied below (``old_*``, as of commit f9da5af) as the baseline; each row
prints the best time per map of both, measured interleaved in this run, and
``old/skimage``: above 1 the hand-written one is slower. The project keeps a
hand-written routine only where it is at least 2x faster (a ratio <= 0.5) and tests
it against scikit-image (tests/test_skimage_equivalence.py).

Maps: 256x256, from the seeded nuclei layout of plexus.data.synthetic_nuclei (wavy
ellipses, about a third placed against an earlier one, so they touch), keeping the
first ``--maps`` layouts of 20-60 nuclei. The probability map is the blurred
foreground, a little lower at the rim and where two nuclei touch, plus smooth
noise; the boundary map is the blurred outlines.

Where the results differ, and the rows that measure it:

* Otsu: scikit-image bins the map's own range and returns a bin centre, the old one
  binned [0, 1] and returned a bin's upper edge (``otsu threshold |diff|``);
* hysteresis: scikit-image grows the weak region through 4-connected pixels, the
  old one through 8-connected ones (``pixels differing``);
* watershed (distance and boundary): the same integer levels, but a pixel reached by
  two seeds in one step went to the larger label, in scikit-image to the one queued
  first; the seeds are ``peak_local_max``'s peaks (joined when within ~min_distance)
  rather than every pixel equal to the maximum within ``min_distance``. ``objects``
  counts both; ``pixels moved`` counts the foreground pixels that are not in the new
  object overlapping most of their old one (0: the same partition); and the mean AP
  against the true nuclei, per row and over the whole default tuning grid, says
  whether the difference matters.

    .venv/bin/python benchmarks/bench_instances.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from skimage.measure import label as sk_label
from skimage.metrics import contingency_table
from skimage.segmentation import find_boundaries

from plexus.data.synthetic_nuclei import _place_nuclei
from plexus.evaluation.instances import average_precision, match_iou
from plexus.postprocess.candidates import hysteresis as old_hysteresis
from plexus.postprocess.candidates import otsu_threshold as old_otsu
from plexus.postprocess.instances import (
    EIGHT,
    foreground_mask,
    instance_grid,
    label_instances,
    relabel_consecutive,
    remove_small_instances,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_of  # noqa: E402

SHAPE = (256, 256)

# --- the hand-written routines, as they were -----------------------------------------------------------------------


def old_relabel(labels):
    labels = np.asarray(labels)
    if not labels.size or labels.max() <= 0:
        return np.zeros(labels.shape, dtype=np.int32)
    present = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1) > 0
    present[0] = False
    lookup = np.cumsum(present).astype(np.int32)
    lookup[0] = 0
    return lookup[labels]


def old_remove_small(labels, min_size):
    labels = np.asarray(labels)
    if min_size > 0 and labels.size and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        labels = np.where(sizes[labels] >= min_size, labels, 0)
    return old_relabel(labels)


def _disk(radius):
    r = np.arange(-radius, radius + 1)
    return r[:, None] ** 2 + r[None, :] ** 2 <= radius ** 2


def old_distance_seeds(mask, distance, min_distance):
    radius = max(int(min_distance), 1)
    peaks = (distance == ndimage.maximum_filter(distance, footprint=_disk(radius))) & mask
    near = ndimage.binary_dilation(peaks, structure=_disk(max(radius // 2, 1))) & mask
    joined, _ = ndimage.label(near, structure=EIGHT)
    return np.where(peaks, joined, 0)


def _grow(labels, admitted):
    labels = labels.copy()
    while True:
        neighbour = ndimage.grey_dilation(labels, footprint=EIGHT)
        claim = admitted & (labels == 0) & (neighbour > 0)
        if not claim.any():
            return labels
        labels[claim] = neighbour[claim]


def old_flood(mask, heights, seeds):
    components, n = ndimage.label(mask, structure=EIGHT)
    labels = np.where(mask, seeds, 0).astype(np.int32)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[components[labels > 0]] = True
    seeded[0] = True
    orphan = ~seeded[components]
    if orphan.any():
        labels[orphan] = components[orphan] + labels.max()
    for level in np.unique(heights[mask]):
        labels = _grow(labels, mask & (heights <= level))
    return labels


def old_foreground(prob, method="cutoff", cutoff=0.5, low=None, high=None):
    prob = np.asarray(prob, dtype=np.float32)
    if method == "cutoff":
        return prob > cutoff
    if method == "otsu":
        return prob > old_otsu(prob)
    return old_hysteresis(prob, cutoff if low is None else low, high)


def old_label_instances(prob, *, method="cutoff", cutoff=0.5, low=None, high=None, min_size=0, watershed=False,
                        min_distance=5, boundary=None):
    mask = old_foreground(prob, method, cutoff, low, high)
    if boundary is not None:
        seeds, _ = ndimage.label(mask & ~(boundary > 0.5), structure=EIGHT)
        labels = old_flood(mask, np.floor(np.clip(boundary, 0, 1) * 10).astype(np.int64), seeds)
    elif watershed:
        distance = ndimage.distance_transform_edt(mask)
        heights = np.floor(distance.max() - distance).astype(np.int64)
        labels = old_flood(mask, heights, old_distance_seeds(mask, distance, min_distance))
    else:
        labels, _ = ndimage.label(mask, structure=EIGHT)
    return old_remove_small(labels, min_size)


# --- maps ----------------------------------------------------------------------------------------------------------


def make_maps(n: int, seed: int = 0):
    """``n`` (truth, prob, boundary) triples of 256x256 layouts holding 20-60 nuclei."""
    out, index = [], 0
    while len(out) < n:
        rng = np.random.default_rng([seed, index])
        index += 1
        truth, radial = _place_nuclei(rng, SHAPE)
        if not 20 <= truth.max() <= 60:
            continue
        inside = np.where(truth > 0, truth, truth.max() + 1)  # background never the smallest neighbour
        contact = (truth > 0) & ((ndimage.grey_dilation(truth, footprint=EIGHT) != truth)
                                 | (ndimage.grey_erosion(inside, footprint=EIGHT) != truth))
        fg = (truth > 0) * (1 - 0.25 * np.clip(radial, 0, 1) ** 2) * np.where(contact, 0.6, 1.0)
        noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 3) * 0.6
        prob = np.clip(ndimage.gaussian_filter(fg, 1.2) * rng.uniform(0.8, 1.0) + noise, 0, 1).astype(np.float32)
        edges = find_boundaries(truth, mode="inner").astype(float)
        boundary = np.clip(ndimage.gaussian_filter(edges, 0.7) * 2.2, 0, 1).astype(np.float32)
        out.append((truth, prob, boundary))
    return out


def changed_pixels(old, new):
    """Foreground pixels outside the new object that overlaps most of their old object (0: same partition)."""
    joint = np.bincount(old.ravel().astype(np.int64) * (int(new.max()) + 1) + new.ravel(),
                        minlength=(int(old.max()) + 1) * (int(new.max()) + 1)).reshape(int(old.max()) + 1, -1)
    return int(joint[1:].sum() - joint[1:].max(axis=1).sum())


def contingency_iou(true, pred):
    """match_iou by scikit-image: its contingency table, cut to the labels present."""
    table = contingency_table(true, pred).toarray()
    rows = np.flatnonzero(np.bincount(true.ravel()))
    cols = np.flatnonzero(np.bincount(pred.ravel()))
    rows, cols = rows[rows > 0], cols[cols > 0]
    inter = table[np.ix_(rows, cols)]
    union = table.sum(axis=1)[rows, None] + table.sum(axis=0)[None, cols] - inter
    return inter / union


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    maps = make_maps(args.maps)
    truths = [t for t, _, _ in maps]
    probs = [p for _, p, _ in maps]
    bounds = [b for _, _, b in maps]
    masks = [p > 0.5 for p in probs]
    comps = [ndimage.label(m, structure=EIGHT)[0] for m in masks]
    n_maps = len(maps)
    counts = [int(t.max()) for t in truths]
    print(f"{n_maps} maps {SHAPE[0]}x{SHAPE[1]}, {min(counts)}-{max(counts)} nuclei (mean {np.mean(counts):.0f}), "
          f"best of {args.repeats}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'routine':44s} {'old ms':>8s} {'skimage ms':>11s} {'old/skimage':>12s}  agreement")

    def row(name, old, new, agreement=""):
        best = best_of(args.repeats, {"old": lambda: [old(i) for i in range(n_maps)],
                                      "new": lambda: [new(i) for i in range(n_maps)]})
        t_old, t_new = 1000 * best["old"] / n_maps, 1000 * best["new"] / n_maps
        print(f"{name:44s} {t_old:8.3f} {t_new:11.3f} {t_old / t_new:11.2f}x  {agreement}")

    diff = max(abs(old_otsu(p) - float(threshold_otsu(p))) for p in probs)
    row("otsu threshold", lambda i: old_otsu(probs[i]), lambda i: threshold_otsu(probs[i]),
        f"otsu threshold |diff| <= {diff:.4f}")
    differ = sum(int((old_hysteresis(p, 0.3, 0.7) != apply_hysteresis_threshold(p, 0.3, 0.7)).sum()) for p in probs)
    row("hysteresis 0.3/0.7", lambda i: old_hysteresis(probs[i], 0.3, 0.7),
        lambda i: apply_hysteresis_threshold(probs[i], 0.3, 0.7),
        f"pixels differing {differ} of {n_maps * SHAPE[0] * SHAPE[1]}")
    same = all(np.array_equal(ndimage.label(m, structure=EIGHT)[0], sk_label(m, connectivity=2)) for m in masks)
    row("8-connected labels (ndimage vs skimage)", lambda i: ndimage.label(masks[i], structure=EIGHT),
        lambda i: sk_label(masks[i], connectivity=2), f"identical {same}")
    shuffled = [np.where(c > 0, c * 7 + 3, 0) for c in comps]  # gaps in the label values
    same = all(np.array_equal(old_relabel(s), relabel_consecutive(s)) for s in shuffled)
    row("relabel 1..N (relabel_sequential)", lambda i: old_relabel(shuffled[i]),
        lambda i: relabel_consecutive(shuffled[i]), f"identical {same}")
    same = all(np.array_equal(old_remove_small(c, 16), remove_small_instances(c, 16)) for c in comps)
    row("min_size 16 + relabel (components.remove_small_components)", lambda i: old_remove_small(comps[i], 16),
        lambda i: remove_small_instances(comps[i], 16), f"identical {same}")

    for name, kwargs in [("watershed min_distance 4", {"watershed": True, "min_distance": 4}),
                         ("watershed min_distance 7", {"watershed": True, "min_distance": 7})]:
        olds = [old_label_instances(p, **kwargs) for p in probs]
        news = [label_instances(p, **kwargs) for p in probs]
        n_old, n_new = sum(int(o.max()) for o in olds), sum(int(n.max()) for n in news)
        moved = sum(changed_pixels(o, n) for o, n in zip(olds, news))
        ap_old = np.mean([average_precision(t, o)[0] for t, o in zip(truths, olds)])
        ap_new = np.mean([average_precision(t, n)[0] for t, n in zip(truths, news)])
        row(name, lambda i, k=kwargs: old_label_instances(probs[i], **k),
            lambda i, k=kwargs: label_instances(probs[i], **k),
            f"objects {n_old} vs {n_new}, pixels moved {moved}, "
            f"mean AP {ap_old:.4f} vs {ap_new:.4f}")
    olds = [old_label_instances(p, boundary=b) for p, b in zip(probs, bounds)]
    news = [label_instances(p, boundary=b) for p, b in zip(probs, bounds)]
    moved = sum(changed_pixels(o, n) for o, n in zip(olds, news))
    ap_old = np.mean([average_precision(t, o)[0] for t, o in zip(truths, olds)])
    ap_new = np.mean([average_precision(t, n)[0] for t, n in zip(truths, news)])
    row("boundary flood", lambda i: old_label_instances(probs[i], boundary=bounds[i]),
        lambda i: label_instances(probs[i], boundary=bounds[i]),
        f"pixels moved {moved}, mean AP {ap_old:.4f} vs {ap_new:.4f}")
    preds = [label_instances(p, watershed=True, min_distance=4) for p in probs]
    same = all(np.allclose(match_iou(t, p), contingency_iou(t, p)) for t, p in zip(truths, preds))
    row("IoU matrix (match_iou vs contingency_table)", lambda i: match_iou(truths[i], preds[i]),
        lambda i: contingency_iou(truths[i], preds[i]), f"identical {same}")

    # the whole default tuning grid (30 settings), old and new, on the same maps
    grid = list(instance_grid())
    print(f"\ndefault tuning grid ({len(grid)} settings): mean AP over the {n_maps} maps, old vs scikit-image")
    print(f"{'setting':56s} {'old':>7s} {'skimage':>8s}")
    scores = {"old": [], "new": []}
    for setting in grid:
        kwargs = setting.to_dict()
        ap_old = np.mean([average_precision(t, old_label_instances(p, **kwargs))[0] for t, p in zip(truths, probs)])
        ap_new = np.mean([average_precision(t, label_instances(p, **kwargs))[0] for t, p in zip(truths, probs)])
        scores["old"].append(ap_old)
        scores["new"].append(ap_new)
        if setting.min_size == 16:
            what = setting.method if setting.method != "cutoff" else f"cutoff {setting.cutoff}"
            split = f"watershed {setting.min_distance}" if setting.watershed else "components"
            print(f"{what + ', ' + split + ', min_size 16':56s} {ap_old:7.4f} {ap_new:8.4f}")
    old, new = np.array(scores["old"]), np.array(scores["new"])
    print(f"largest |mean AP difference| over the grid: {np.abs(old - new).max():.4f}")
    for name, ap in (("old", old), ("skimage", new)):
        best = int(np.argmax(ap))  # first maximum, as tune_instances
        print(f"best setting, {name}: {grid[best].to_dict()} mean AP {ap[best]:.4f}")
    assert np.array_equal(foreground_mask(probs[0]), masks[0])


if __name__ == "__main__":
    main()
