"""The nerve path at the real Kaggle size on the CPU, with wall time and peak RSS per rule.

Runs the workflow of this checkout with ``benchmarks/kaggle_scale.yaml`` (a synthetic
dataset of 5,640 training and 5,508 test images at 420x580, 5 folds, one tiny epoch per
fold) in a scratch working directory, then sums the rules' ``benchmark:`` files
(:mod:`dag_breakdown`). Nothing here is a GPU measurement: training is one epoch of a
small U-Net, so what it measures is everything around training.

    .venv/bin/python benchmarks/bench_kaggle_scale.py --workdir /tmp/plexus-kaggle-scale
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dag_breakdown import breakdown

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/plexus-kaggle-scale"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="reuse the working directory (no fresh start)")
    args = parser.parse_args()
    if args.workdir.exists() and not args.keep:
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(args.workdir), "--configfile", str(REPO / "benchmarks/kaggle_scale.yaml"),
               "--cores", str(args.cores), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    rows = breakdown(args.workdir / "results/benchmarks")
    print(f"whole run: {wall:.0f} s wall on {args.cores} cores; load average {os.getloadavg()[0]:.2f}")
    print(f"{'rule':22s} {'jobs':>5s} {'wall s':>8s} {'s/job':>7s} {'peak RSS MB':>12s}")
    for r in rows:
        per_job = r["seconds"] / r["jobs"]
        print(f"{r['rule']:22s} {r['jobs']:5d} {r['seconds']:8.1f} {per_job:7.1f} {r['max_rss']:12.0f}")


if __name__ == "__main__":
    main()
