"""Wall time of the whole default DAG, this checkout against a baseline revision, in one run.

Each revision is cloned into its own folder (``git clone`` of this repository, then
``git checkout``; the current one also gets the working tree's uncommitted changes), and
``snakemake --cores N`` runs the default config from scratch in each, alternately, for
``--rounds`` rounds, so both meet the same machine. It prints each run's wall time and
job count, the median ratio current / baseline, and the current code's per-rule breakdown
(``dag_breakdown.py``) of its last run::

    .venv/bin/python benchmarks/bench_dag.py --baseline ae428b0 --rounds 2
    .venv/bin/python benchmarks/bench_dag.py --baseline 7825e91 --configfile config/config.yaml \
        --configfile config/examples/nuclei.yaml --configfile config/examples/multiclass.yaml

``--configfile`` (repeatable) runs each of those configs instead of the default, each against the
baseline in the same run.

The virtual environment running this script runs both (its ``snakemake``). Scores are
compared too: the summary table of every run must be the same, or the script says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dag_breakdown import breakdown, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def checkout(revision: str | None, target: Path) -> Path:
    """A clone of this repository at ``revision``; ``None``: HEAD plus the working tree's changes."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    if revision is not None:
        subprocess.run(["git", "checkout", "-q", revision], cwd=target, check=True)
        return target
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, check=True, capture_output=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=target, input=diff, check=True)
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
    for name in untracked:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


#: the results table of a run: every task's since the task axis; the older per-wing names before it
TABLES = ("summary.csv", "classes.csv", "instances.csv")


def run_dag(workdir: Path, cores: int, configfile: str | None = None) -> dict:
    for stale in ("results", ".snakemake"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    snakemake = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    command = [str(snakemake), "--cores", str(cores)] + (["--configfile", configfile] if configfile else [])
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{result.stderr[-4000:]}")
    jobs = sum(1 for line in result.stderr.splitlines() if line.startswith(("rule ", "localrule ")))
    table = next(workdir / "results/tables" / name for name in TABLES if (workdir / "results/tables" / name).exists())
    return {"seconds": seconds, "jobs": jobs, "summary": table.read_text()}


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare with, e.g. a release tag")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", action="append", default=None,
                        help="a config to run instead of the default (repeatable: each one in turn)")
    args = parser.parse_args()
    for configfile in args.configfile or [None]:
        compare(args, configfile)


def compare(args, configfile: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="plexus-bench-dag-") as tmp:
        trees = {"baseline": checkout(args.baseline, Path(tmp) / "baseline"),
                 "current": checkout(None, Path(tmp) / "current")}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        print(f"\n{configfile or 'default'} DAG, snakemake --cores {args.cores}, {args.rounds} round(s), alternating; "
              f"baseline {args.baseline}, current = this working tree")
        for round_ in range(1, args.rounds + 1):
            for name, tree in trees.items():
                before = load_average()
                run = run_dag(tree, args.cores, configfile)
                runs[name].append(run)
                print(f"round {round_} {name:8s} {run['seconds']:7.1f} s  {run['jobs']:3d} jobs  "
                      f"load average {before} before, {load_average()} after", flush=True)
        medians = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
        print(f"median: baseline {medians['baseline']:.1f} s, current {medians['current']:.1f} s, "
              f"current / baseline {medians['current'] / medians['baseline']:.2f}x")
        summaries = {r["summary"] for rs in runs.values() for r in rs}
        print("summary tables: " + ("identical in every run" if len(summaries) == 1 else
                                    f"{len(summaries)} different tables: the scores changed"))
        print("\nper-rule breakdown of the current code's last run (benchmark: files)")
        print_table(breakdown(trees["current"] / "results/benchmarks"))

if __name__ == "__main__":
    main()
