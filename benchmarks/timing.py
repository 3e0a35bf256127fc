"""Timing shared by the benchmarks: every variant measured in the same run, interleaved."""

from __future__ import annotations

import time


def best_of(repeats: int, runs: dict) -> dict:
    """Run every callable ``repeats`` times, interleaved; the best time of each."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
