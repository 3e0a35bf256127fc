"""Per-rule time of a finished workflow run, from Snakemake's ``benchmark:`` files.

Every rule writes ``results/benchmarks/<rule>/...tsv`` (wall seconds ``s``, peak RSS
``max_rss`` in MB, CPU seconds ``cpu_time``). This sums them per rule and prints each
rule's share of all job time, so the time of a DAG run can be attributed::

    rm -rf results .snakemake && time snakemake --cores 2
    python benchmarks/dag_breakdown.py [results/benchmarks]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def breakdown(root: Path) -> list[dict]:
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "cpu": 0.0, "max_rss": 0.0})
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[0]
        with path.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        last = rows[-1]  # a rerun appends nothing: Snakemake rewrites the file per job
        entry = rules[rule]
        entry["jobs"] += 1
        entry["seconds"] += float(last["s"])
        entry["cpu"] += _number(last.get("cpu_time"))
        entry["max_rss"] = max(entry["max_rss"], _number(last.get("max_rss")))
    return [{"rule": rule, **values} for rule, values in sorted(rules.items(), key=lambda kv: -kv[1]["seconds"])]


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):  # "-" or "NA" when the job was too short to sample
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="results/benchmarks", type=Path)
    args = parser.parse_args()
    rows = breakdown(args.root)
    if not rows:
        raise SystemExit(f"no benchmark files under {args.root}: run the workflow first")
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    """The per-rule table of :func:`breakdown`'s rows, with the total."""
    total = sum(r["seconds"] for r in rows)
    jobs = sum(r["jobs"] for r in rows)
    print(f"{'rule':24s} {'jobs':>5s} {'job s':>8s} {'s/job':>7s} {'share':>6s} {'cpu s':>8s} {'peak RSS MB':>12s}")
    for r in rows:
        print(f"{r['rule']:24s} {r['jobs']:5d} {r['seconds']:8.1f} {r['seconds'] / r['jobs']:7.1f} "
              f"{r['seconds'] / total:6.1%} {r['cpu']:8.1f} {r['max_rss']:12.0f}")
    print(f"{'all':24s} {jobs:5d} {total:8.1f} {total / jobs:7.1f} {1:6.0%}")


if __name__ == "__main__":
    main()
