"""Run-length encoding speed: ``plexus.io.rle`` against one plain numpy run-length pass.

The baseline is the issue's definition of one numpy pass over a mask: copy it into a
zero-padded column-major uint8 vector, ``np.flatnonzero(np.diff(...))``. It finds the
run edges and nothing more (no numbers, no string). A stronger baseline, the same
with a boolean ``!=`` instead of ``np.diff`` on uint8, is printed too. ``encode``
returns the Kaggle string; ``decode`` parses it and writes a 420x580 uint8 mask.
Every timing is the best of ``--repeats`` passes over ``--masks`` masks of a kind,
in this process, interleaved; ratios are against the baseline of the same masks.
The script checks that every string round-trips and equals the reference encoder.

The submission row times ``plexus.postprocess.submission.encode_masks`` (upsampling
5,508 synthetic test maps to 420x580, post-processing, encoding) and writing the CSV.

    .venv/bin/python benchmarks/bench_rle.py
    .venv/bin/python benchmarks/bench_rle.py --submission 5508
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import best_of

from plexus.data import resize
from plexus.data.ingest import KAGGLE_SHAPE
from plexus.io import rle
from plexus.postprocess import submission

ROWS, COLS = KAGGLE_SHAPE


def _ellipse(rng):
    r, c = np.ogrid[:ROWS, :COLS]
    cy, cx = rng.uniform([120, 150], [300, 430])
    ry, rx = rng.uniform([28, 45], [45, 75])
    return ((r - cy) / ry) ** 2 + ((c - cx) / rx) ** 2 <= 1


def make_masks(kind: str, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` boolean 420x580 masks of one kind.

    empty: no foreground. blob: one nerve-sized ellipse (~8,000 pixels). noisy: a
    thresholded noisy probability map, a few ragged blobs and specks (~1-3 thousand
    runs). speckle: 30% independent random pixels (~50,000 runs; a stress case whose
    string is longer than the mask).
    """
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n):
        if kind == "empty":
            mask = np.zeros(KAGGLE_SHAPE, dtype=bool)
        elif kind == "blob":
            mask = _ellipse(rng)
        elif kind == "noisy":
            coarse = torch.from_numpy(rng.normal(size=(1, 1, 16, 20)).astype(np.float32))
            field = torch.nn.functional.interpolate(coarse, size=KAGGLE_SHAPE, mode="bilinear")[0, 0].numpy()
            mask = (field + 0.6 * rng.normal(size=KAGGLE_SHAPE) > 1.6) | _ellipse(rng)
        elif kind == "speckle":
            mask = rng.random(KAGGLE_SHAPE) < 0.3
        else:
            raise ValueError(kind)
        masks.append(mask)
    return masks


def baseline(mask: np.ndarray) -> np.ndarray:
    """The issue's numpy pass: padded column-major uint8, ``np.flatnonzero(np.diff(...))``."""
    padded = np.zeros(mask.size + 2, dtype=np.uint8)
    padded[1:-1].reshape(COLS, ROWS)[...] = mask.T
    return np.flatnonzero(np.diff(padded))


def baseline_bool(mask: np.ndarray) -> np.ndarray:
    """The same pass with a boolean comparison (numpy's nonzero is much faster on bool than on uint8)."""
    padded = np.zeros(mask.size + 2, dtype=np.bool_)
    padded[1:-1].reshape(COLS, ROWS)[...] = mask.T
    return np.flatnonzero(padded[1:] != padded[:-1])


def reference_encode(mask: np.ndarray) -> str:
    """Kaggle RLE from the run edges of the baseline pass and ``str`` per number."""
    edges = baseline(mask)
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(edges[0::2].tolist(), edges[1::2].tolist()))


def time_kind(kind: str, n: int, repeats: int) -> tuple[dict, float]:
    masks = make_masks(kind, n)
    texts = [rle.encode(m) for m in masks]
    for mask, text in zip(masks, texts):
        assert text == reference_encode(mask)
        np.testing.assert_array_equal(rle.decode(text, KAGGLE_SHAPE), mask)
    def each(function, items):  # results are dropped at once, as a caller copying them would
        for item in items:
            function(item)

    runs = {
        "baseline": lambda: each(baseline, masks),
        "baseline_bool": lambda: each(baseline_bool, masks),
        "encode": lambda: each(rle.encode, masks),
        "decode": lambda: each(lambda t: rle.decode(t, KAGGLE_SHAPE), texts),
    }
    return best_of(repeats, runs), float(np.mean([len(t.split()) // 2 for t in texts]))


def time_submission(n: int, size=(64, 80), seed: int = 0) -> dict:
    """Seconds for encode_masks (upsample, post-process, encode) and the CSV of ``n`` synthetic test maps."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = torch.from_numpy(rng.normal(size=(n, 1, h // 8, w // 8)).astype(np.float32))
    logits = -4.5 + 1.5 * torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")[:, 0].numpy()
    r, c = np.ogrid[:h, :w]
    for i in np.flatnonzero(rng.random(n) < 0.45):
        cy, cx = rng.uniform(0.3, 0.7, 2) * [h, w]
        logits[i] += 9 * ((((r - cy) / (0.08 * h)) ** 2 + ((c - cx) / (0.1 * w)) ** 2) <= 1)
    prob = (1 / (1 + np.exp(-logits))).astype(np.float16)
    out = {}
    t0 = time.perf_counter()
    for lo in range(0, n, 64):
        resize.upsample_mean([prob[lo:lo + 64]], KAGGLE_SHAPE)
    out["upsampling alone (batches of 64)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pixels = submission.encode_masks([prob], 0.5, 2000, batch_size=64, shape=KAGGLE_SHAPE)
    out["encode_masks (upsample, post-process, encode)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = submission.submission_frame(range(1, n + 1), pixels)
    with tempfile.TemporaryDirectory() as tmp:
        summary = submission.write_submission(frame, Path(tmp) / "submission.csv")
    out["submission_frame + write_submission (CSV)"] = time.perf_counter() - t0
    out["_summary"] = summary
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=200, help="masks of each kind")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="empty,blob,noisy,speckle")
    parser.add_argument("--submission", type=int, default=5508, help="test maps in the submission timing (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(" ".join(["$ .venv/bin/python benchmarks/bench_rle.py", *sys.argv[1:]]))
    print(f"{args.masks} masks 420x580 of each kind, best of {args.repeats}, 1 thread; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'masks':<9}{'runs':>8}{'baseline us':>13}{'bool pass':>11}{'encode':>9}{'decode':>9}"
          f"{'encode us':>11}{'decode us':>11}")
    for kind in args.kinds.split(","):
        times, runs = time_kind(kind, args.masks, args.repeats)
        per = {k: v / args.masks * 1e6 for k, v in times.items()}
        base = per["baseline"]
        print(f"{kind:<9}{runs:>8.0f}{base:>13.1f}{per['baseline_bool'] / base:>10.2f}x"
              f"{per['encode'] / base:>8.2f}x{per['decode'] / base:>8.2f}x{per['encode']:>11.1f}{per['decode']:>11.1f}")
    if args.submission:
        out = time_submission(args.submission)
        summary = out.pop("_summary")
        print(f"submission of {args.submission} masks (64x80 float16 maps -> 420x580, cutoff 0.5, min area 2000): "
              f"{summary['rows']} rows, {summary['empty']} empty, {summary['bytes']} bytes")
        for name, seconds in out.items():
            print(f"  {name:<48}{seconds:>7.2f} s")


if __name__ == "__main__":
    main()
