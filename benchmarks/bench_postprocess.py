"""Cost of each post-processing candidate per 420x580 map, against the plain cutoff + minimum area.

The baseline is what tuning and the submission do without candidates: threshold one
upsampled map and count its pixels (``PostProcess(cutoff, min_area).apply``, no
connected components). Every candidate but ``otsu`` needs per-image connected
components (``scipy.ndimage.label``), so it cannot be folded into tuning's single
histogram pass; ``otsu`` needs a per-image histogram. Maps: a smooth nerve-like blob
plus speckle, as a trained model's probabilities look; best of ``--repeats`` passes.

    .venv/bin/python benchmarks/bench_postprocess.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from plexus import ORIGINAL_SHAPE
from plexus.postprocess.candidates import PostProcess

ROWS, COLS = ORIGINAL_SHAPE


def maps(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r, c = np.ogrid[:ROWS, :COLS]
    out = np.empty((n, ROWS, COLS), np.float32)
    for i in range(n):
        cy, cx = rng.uniform([120, 150], [300, 430])
        blob = np.exp(-(((r - cy) / 40) ** 2 + ((c - cx) / 60) ** 2))
        out[i] = np.clip(blob * rng.uniform(0.3, 1.0) + rng.random((ROWS, COLS)) ** 6 * 0.7, 0, 1)
    return out


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
    args = parser.parse_args()
    torch.set_num_threads(1)
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
