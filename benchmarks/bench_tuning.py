"""Tuning-grid speed and memory: ``plexus.postprocess.tuning.tune`` against its floor.

The floor is what any evaluation of the grid must at least do: upsample every OOF
map to 420x580 (``plexus.data.resize.upsample_mean``, as tuning does) and make one
histogram pass per image, numpy ``bincount`` on 8-bit quantised probabilities. It
is timed at several batch sizes and the fastest counts. ``tune`` is timed whole:
counting, scoring the grid and the per-image metrics. Both run in this process on
the same synthetic data, alternately, best of ``--repeats``; the script prints the
times and the ratios, and checks on the first images that the lookup-table path
gives exactly the counts of the general (``torch.bucketize``) path.

``--rss`` also measures peak memory in child processes (``VmHWM`` after resetting
it through ``/proc/self/clear_refs`` just before ``tune``): once with the true
masks decoded from run-length strings batch by batch, as a lazy sequence (tuning's
own footprint: the OOF maps, the lookup table, one batch), once with all true masks
in memory as ``plexus.tasks.binary.tune_stage`` loads them (n x 420 x 580 bytes).

    .venv/bin/python benchmarks/bench_tuning.py                      # 600 maps 64x80, 101 x 51
    .venv/bin/python benchmarks/bench_tuning.py --data uniform
    .venv/bin/python benchmarks/bench_tuning.py --cutoffs 1001 --areas 501
    .venv/bin/python benchmarks/bench_tuning.py --images 5635 --repeats 2 --rss
    .venv/bin/python benchmarks/bench_tuning.py --images 5635 --size 128x160 --repeats 2 --rss
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
from timing import best_of

from plexus.data import resize
from plexus.data.ingest import KAGGLE_SHAPE
from plexus.io import rle
from plexus.postprocess import tuning

NERVE_FRACTION = 0.41  # share of Kaggle training images with a nerve mask


def _blob(shape, center, radii):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return ((rows - center[0]) / radii[0]) ** 2 + ((cols - center[1]) / radii[1]) ** 2 <= 1


def make_case(n: int, size: tuple[int, int], seed: int = 0):
    """Synthetic OOF probabilities (n, *size) float16 and nerve ellipses for the truth.

    Returns ``(prob, blobs)``; ``blobs[i]`` is ``None`` (empty mask) or ``(center, radii)``
    at 420x580. The probabilities are smooth noise around 0.01, high over a slightly
    misplaced copy of the nerve, with an occasional false positive on empty images.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    prob = np.empty((n, h, w), dtype=np.float16)
    blobs = []
    scale = (h / KAGGLE_SHAPE[0], w / KAGGLE_SHAPE[1])
    for lo in range(0, n, 256):
        m = min(256, n - lo)
        coarse = torch.from_numpy(rng.normal(size=(m, 1, h // 8, w // 8)).astype(np.float32))
        logits = -4.5 + 1.5 * torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")[:, 0].numpy()
        for i in range(m):
            blob = None
            if rng.random() < NERVE_FRACTION:
                blob = (rng.uniform(120, 300, 2) * [1, 580 / 420], rng.uniform([28, 45], [45, 75]))
            blobs.append(blob)
            shown = blob if blob is not None else (
                (rng.uniform(120, 300, 2) * [1, 580 / 420], rng.uniform([15, 20], [30, 40]))
                if rng.random() < 0.15 else None)
            if shown is not None:
                center = (shown[0] + rng.normal(0, 6, 2)) * scale
                logits[i] += 9 * _blob(size, center, shown[1] * scale)
        prob[lo:lo + m] = 1 / (1 + np.exp(-logits))
    return prob, blobs


def make_uniform_case(n: int, size: tuple[int, int], seed: int = 0):
    """The earlier benchmark's maps: independent ``U(0, 1) ** 4`` pixels (spread over the whole range), same truth."""
    _, blobs = make_case(n, (8, 10), seed)
    return (np.random.default_rng(seed).random((n, *size)) ** 4).astype(np.float16), blobs


def truth_masks(blobs, rows: slice | None = None) -> np.ndarray:
    chosen = blobs if rows is None else blobs[rows]
    out = np.zeros((len(chosen), *KAGGLE_SHAPE), dtype=np.uint8)
    for i, blob in enumerate(chosen):
        if blob is not None:
            out[i] = _blob(KAGGLE_SHAPE, *blob)
    return out


class RleMasks:
    """True masks kept as Kaggle run-length strings and decoded on slicing, as ``train_masks.csv`` holds them."""

    def __init__(self, blobs):
        self.pixels = [rle.encode(truth_masks(blobs, slice(i, i + 1))[0]) for i in range(len(blobs))]

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.stack([rle.decode(p, KAGGLE_SHAPE) for p in self.pixels[rows]])


CASES = {"nerve": make_case, "uniform": make_uniform_case}


def floor(prob, batch_size: int) -> None:
    for lo in range(0, len(prob), batch_size):
        up = resize.upsample_mean([prob[lo:lo + batch_size]], KAGGLE_SHAPE).numpy()
        quantised = (up * 255).astype(np.uint8)
        for image in quantised:
            np.bincount(image.ravel(), minlength=256)


def upsample_only(prob, batch_size: int) -> None:
    for lo in range(0, len(prob), batch_size):
        resize.upsample_mean([prob[lo:lo + batch_size]], KAGGLE_SHAPE)


def check_exact(prob, truth, cutoffs, n: int = 40) -> None:
    """Counts of the lookup-table path equal those of the general path (bucketize) on ``n`` images."""
    fast = tuning.cutoff_counts([prob[:n]], truth[:n], cutoffs)
    saved, tuning._SHIFTS = tuning._SHIFTS, ()  # no table: the general path
    try:
        general = tuning.cutoff_counts([prob[:n]], truth[:n], cutoffs)
    finally:
        tuning._SHIFTS = saved
    np.testing.assert_array_equal(fast.pred_area, general.pred_area)
    np.testing.assert_array_equal(fast.intersection, general.intersection)


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def child_rss(args) -> None:
    """Build the inputs, reset the peak RSS, run ``tune`` once; print ``inputs_bytes peak_bytes seconds``."""
    torch.set_num_threads(args.threads)
    prob, blobs = CASES[args.data](args.images, resize.parse_size(args.size))
    truth = RleMasks(blobs) if args.truth == "rle" else truth_masks(blobs)
    cutoffs, areas = np.linspace(0, 1, args.cutoffs), np.linspace(0, 10000, args.areas).astype(int)
    folds = np.arange(args.images) % 5
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    before = _status("VmRSS")
    t0 = time.perf_counter()
    tuning.tune([prob], truth, cutoffs, areas, folds)
    seconds = time.perf_counter() - t0
    print(before, _status("VmHWM"), seconds)


def measure_rss(args, truth: str) -> tuple[float, float, float]:
    command = [sys.executable, __file__, "--child-rss", "--truth", truth, "--images", str(args.images),
               "--size", args.size, "--cutoffs", str(args.cutoffs), "--areas", str(args.areas),
               "--threads", str(args.threads), "--data", args.data]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]) / 2**30, int(out[1]) / 2**30, float(out[2])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", default="64x80", help="OOF map size (model input), upsampled to 420x580")
    parser.add_argument("--cutoffs", type=int, default=101, help="cutoffs: linspace(0, 1, N)")
    parser.add_argument("--areas", type=int, default=51, help="minimum areas: linspace(0, 10000, N)")
    parser.add_argument("--data", choices=sorted(CASES), default="nerve",
                        help="nerve: smooth maps, mostly near 0, a blob near 1; uniform: U(0,1)**4 pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--floor-batches", default="1,4,8,16")
    parser.add_argument("--general", action="store_true", help="also time the general (bucketize) path")
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS in child processes")
    parser.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--truth", default="rle", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        return child_rss(args)

    torch.set_num_threads(args.threads)
    size = resize.parse_size(args.size)
    prob, blobs = CASES[args.data](args.images, size)
    truth = truth_masks(blobs)
    cutoffs, areas = np.linspace(0, 1, args.cutoffs), np.linspace(0, 10000, args.areas).astype(int)
    folds = np.arange(args.images) % 5
    check_exact(prob, truth, cutoffs)

    batches = [int(b) for b in args.floor_batches.split(",")]
    runs = {f"floor, batch {b}": (lambda b=b: floor(prob, b)) for b in batches}
    runs["upsample alone, batch 8"] = lambda: upsample_only(prob, 8)
    runs["tune"] = lambda: tuning.tune([prob], truth, cutoffs, areas, folds)
    if args.general:
        def general():
            saved, tuning._SHIFTS = tuning._SHIFTS, ()
            try:
                tuning.tune([prob], truth, cutoffs, areas, folds)
            finally:
                tuning._SHIFTS = saved
        runs["tune, general path (bucketize)"] = general
    times = best_of(args.repeats, runs)
    floor_name = min((name for name in times if name.startswith("floor")), key=times.get)

    print(" ".join(["$ .venv/bin/python benchmarks/bench_tuning.py", *sys.argv[1:]]))
    print(f"{args.images} {args.data} OOF maps {args.size} float16 -> 420x580, "
          f"{args.cutoffs} cutoffs x {args.areas} min areas, {args.threads} thread(s), best of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'':<34}{'seconds':>9}{'ns/pixel':>10}{'vs floor':>10}")
    pixels = args.images * KAGGLE_SHAPE[0] * KAGGLE_SHAPE[1]
    for name, seconds in times.items():
        mark = "  <- floor" if name == floor_name else ""
        ratio = seconds / times[floor_name]
        print(f"{name:<34}{seconds:>9.2f}{seconds / pixels * 1e9:>10.2f}{ratio:>9.2f}x{mark}")
    print(f"tune / upsampling alone: {times['tune'] / times['upsample alone, batch 8']:.2f}x")
    if args.rss:
        for truth_kind, label in [("rle", "true masks decoded per batch"), ("memory", "true masks all in memory")]:
            before, peak, seconds = measure_rss(args, truth_kind)
            print(f"peak RSS of tune, {label}: {peak:.2f} GiB (process before tune: {before:.2f} GiB; "
                  f"tune took {seconds:.1f} s)")


if __name__ == "__main__":
    main()
