"""Wall time of one ``snakemake`` start: this checkout against a baseline revision, in one run.

Every ``snakemake`` call pays it: a dry run, each test of the workflow suite, each job of a
cluster run (the plugin starts Snakemake again inside every job). The start imports Snakemake,
parses the Snakefile, validates the config, computes every rule's code version
(:mod:`plexus.codehash`) and plans the DAG. Each revision is cloned as ``bench_dag.py`` does, then
``snakemake -n`` plans the default config's whole DAG in each, alternately, ``--rounds`` times.
The code versions' folder (``PLEXUS_CACHE_DIR``) is a fresh temporary one: the current
checkout's first start fills it (printed apart, as "cold"), the later ones read it, as every start
of an unchanged checkout does::

    .venv/bin/python benchmarks/bench_start.py --baseline ecdd040 --rounds 7

It prints each start's seconds, the median of each revision's warm starts and the ratio
current / baseline; both must plan the same number of jobs, or the script says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dag import checkout  # noqa: E402


def dry_run(workdir: Path, env: dict) -> tuple[float, int]:
    """Seconds of ``snakemake -n`` in ``workdir`` and the number of jobs it plans."""
    snakemake = Path(sys.executable).with_name("snakemake")
    t0 = time.perf_counter()
    result = subprocess.run([str(snakemake), "-n"], cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"snakemake -n failed in {workdir}:\n{result.stderr[-4000:]}")
    out = result.stdout + result.stderr
    jobs = sum(1 for line in out.splitlines() if line.startswith(("rule ", "localrule ")))
    return seconds, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=7, help="warm starts per revision (default 7)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_start_") as tmp:
        tmp = Path(tmp)
        trees = {"current": checkout(None, tmp / "current"), "baseline": checkout(args.baseline, tmp / "baseline")}
        env = {**os.environ, "PLEXUS_CACHE_DIR": str(tmp / "cache")}
        cold = {name: dry_run(tree, env) for name, tree in trees.items()}
        print(f"cold start (no kept code versions): current {cold['current'][0]:.2f} s, "
              f"baseline {cold['baseline'][0]:.2f} s")
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        jobs = {name: cold[name][1] for name in trees}
        for round_ in range(args.rounds):
            for name, tree in trees.items():
                took, planned = dry_run(tree, env)
                seconds[name].append(took)
                if planned != jobs[name]:
                    print(f"warning: {name} planned {planned} jobs, before {jobs[name]}")
            print(f"round {round_ + 1}: current {seconds['current'][-1]:.2f} s, "
                  f"baseline {seconds['baseline'][-1]:.2f} s")
        if jobs["current"] != jobs["baseline"]:
            print(f"note: the revisions plan different DAGs: current {jobs['current']} jobs, "
                  f"baseline {jobs['baseline']}")
        median = {name: statistics.median(values) for name, values in seconds.items()}
        print(f"\nsnakemake -n of the default config ({jobs['current']} jobs planned), median of {args.rounds}:")
        print(f"  baseline {args.baseline}: {median['baseline']:.2f} s")
        print(f"  current:  {median['current']:.2f} s")
        print(f"  current / baseline: {median['current'] / median['baseline']:.2f}x")


if __name__ == "__main__":
    main()
