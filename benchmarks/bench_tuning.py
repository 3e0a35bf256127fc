"""Tuning-grid speed: one-pass counting (plexus.tuning) vs brute-force thresholding.

The baseline thresholds every upsampled image at every cutoff and rescoring every
minimum area, the obvious implementation. Both run in this process on the same
data; the script prints each time and the ratio against the baseline, and checks
that both give the same grid.

    .venv/bin/python benchmarks/bench_tuning.py [--images 120] [--cutoffs 21] [--areas 21]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from plexus import ORIGINAL_SHAPE, resize, tuning
from plexus.metrics import dice_from_counts


def brute_force(prob, truth, cutoffs, areas):
    scores = np.zeros((len(cutoffs), len(areas)))
    up = resize.upsample(prob).numpy()
    truth = truth != 0
    true_area = truth.reshape(len(truth), -1).sum(1)
    for i, cutoff in enumerate(cutoffs):
        pred = up > np.float32(cutoff)  # float32, as plexus.tuning.postprocess compares
        pred_area = pred.reshape(len(pred), -1).sum(1)
        inter = (pred & truth).reshape(len(pred), -1).sum(1)
        for j, area in enumerate(areas):
            keep = pred_area >= area
            scores[i, j] = dice_from_counts(np.where(keep, inter, 0), np.where(keep, pred_area, 0), true_area).mean()
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--cutoffs", type=int, default=21)
    parser.add_argument("--areas", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    prob = (rng.random((args.images, 64, 80)) ** 4).astype(np.float16)
    truth = np.zeros((args.images, *ORIGINAL_SHAPE), dtype=np.uint8)
    truth[::2, 100:180, 200:290] = 1
    cutoffs = np.linspace(0.05, 0.95, args.cutoffs)
    areas = np.linspace(0, 10000, args.areas).astype(int)

    t0 = time.perf_counter()
    expected = brute_force(prob, truth, cutoffs, areas)
    t_brute = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid = tuning.score_grid(tuning.cutoff_counts([prob], truth, cutoffs), areas)
    t_counts = time.perf_counter() - t0
    np.testing.assert_allclose(grid["score"].to_numpy().reshape(len(cutoffs), len(areas)), expected)

    print(f"{args.images} images at 420x580, {args.cutoffs} cutoffs x {args.areas} min areas, 1 thread")
    print(f"{'method':<34}{'seconds':>9}{'ratio':>8}")
    print(f"{'brute force (baseline)':<34}{t_brute:>9.2f}{1.0:>8.2f}")
    print(f"{'one-pass counts (plexus.tuning)':<34}{t_counts:>9.2f}{t_brute / t_counts:>8.2f}x faster")


if __name__ == "__main__":
    main()
