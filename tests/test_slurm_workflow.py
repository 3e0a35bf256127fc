"""The whole workflow through real sbatch: ``snakemake --profile slurm`` end to end.

A one-node Slurm 22.05 cluster with accounting and two fake GPUs is started by
tests/slurm/start.sh (see tests/slurm/README.md); the test skips when that
cannot be done here (exit 3: not root, no apt-get, a real slurm.conf), unless
``PLEXUS_REQUIRE_SLURM=1`` (CI), where it fails instead.

On a copy of the workflow with tests/configs/slurm.yaml it runs the default
target with the repository's profile ``slurm/config.yaml`` and checks that

* the run succeeds and writes the submission and every figure;
* every job of the DAG but ``all`` went through sbatch exactly once (no retry),
  and Slurm's accounting (``sacct``) has each of them COMPLETED, the GPU rules
  (train, predict_*) in partition ``gpu`` with one GPU allocated, every other
  rule in partition ``cpu`` without a GPU;
* every training job saw itself run inside such a GPU job (``train_info.json``);
* a second run with nothing changed submits nothing.

The per-job logs of the plugin (``.snakemake/slurm_logs``, deleted on success)
and Snakemake's output are shown when something fails. Times per stage are
printed (``pytest -s`` or ``-rP``); most of the ~3.5 min is the plugin's status
polling (about 16 s per DAG level), not the jobs (5-12 s each).

Side effect worth knowing: snakemake-executor-plugin-slurm 2.8.0 runs
``scontrol show config`` whenever Snakemake starts, local runs included (the
help text of its ``status_command`` setting is computed at import). While this
cluster is stopped but its /etc/slurm/slurm.conf is still there, that call
waits ~9 s for the absent slurmctld (without any slurm.conf, scontrol's DNS
lookup would hit the plugin's 10 s timeout instead), so every local
``snakemake`` on this machine starts ~9 s slower once the cluster is stopped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from workflow_helpers import (
    REPO,
    SNAKEMAKE,
    make_workdir,
    planned_jobs,
    read_config,
    rule_counts,
)

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

START = REPO / "tests" / "slurm" / "start.sh"
STOP = REPO / "tests" / "slurm" / "stop.sh"
RUN_TIMEOUT = 900  # seconds for one `snakemake --profile slurm`; the first run takes ~3.5 min
PROFILE_ARGS = [
    "--profile", "slurm",
    "--slurm-init-seconds-before-status-checks", "3",
    "--seconds-between-status-checks", "3",
]
GPU_RULES = {"train", "predict", "predict_oof", "predict_noisy"}
SUBMITTED = re.compile(
    r"Job (\d+) has been submitted with SLURM jobid (\d+) "
    r"\(log: \S*/slurm_logs/(?:rule|group)_([A-Za-z0-9_]+)/\S*\)"
)
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
SACCT_FIELDS = ["JobID", "JobName", "Partition", "State", "Comment", "AllocTRES", "Elapsed"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE"}


# ----------------------------------------------------------------------- cluster


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the test cluster (or reuse a healthy one); stop it afterwards if we started it.

    A cluster that was already running when the tests began was started by someone
    else (by hand, or another test session on this machine) and is left running:
    stopping it would cancel their jobs. In CI the cluster starts from nothing, so
    this fixture starts it and stops it again.
    """
    t0 = time.monotonic()
    try:
        start = subprocess.run(["bash", str(START)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"tests/slurm/start.sh did not finish in {err.timeout} s:\n{err.stdout}\n{err.stderr}")
    output = f"{start.stdout}{start.stderr}".strip()
    if start.returncode == 3:
        message = f"no test Slurm cluster on this machine (tests/slurm/start.sh exit 3):\n{output}"
        if os.environ.get("PLEXUS_REQUIRE_SLURM") == "1":
            pytest.fail(f"PLEXUS_REQUIRE_SLURM=1 but {message}")
        pytest.skip(message)
    if start.returncode != 0:
        pytest.fail(f"tests/slurm/start.sh failed (exit {start.returncode}):\n{output}")
    started_here = "already running and healthy" not in output
    print(f"slurm cluster {'started' if started_here else 'reused'} in {time.monotonic() - t0:.1f} s")
    yield
    if started_here:
        stop = subprocess.run(["bash", str(STOP)], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, f"tests/slurm/stop.sh failed:\n{stop.stdout}{stop.stderr}"


def stores_job_comment() -> bool:
    """Does the cluster keep job comments in its accounting DB (AccountingStoreFlags=job_comment)?"""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    return any(line.split("=")[0].strip() == "AccountingStoreFlags" and "job_comment" in line
               for line in out.splitlines())


def sacct(*args: str) -> pd.DataFrame:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", ",".join(SACCT_FIELDS), *args],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=SACCT_FIELDS, dtype=str)


def sacct_since(start: str, *args: str) -> pd.DataFrame:
    return sacct("-S", start, "-E", "now", *args)


def sacct_final(run_id: str, start: str, n_expected: int, timeout: float = 60) -> pd.DataFrame:
    """The jobs named ``run_id``, once all ``n_expected`` are in the DB in a final state
    (slurmctld sends job ends to slurmdbd asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = sacct_since(start, "--name", run_id)
        states = jobs["State"].str.split().str[0]
        if (len(jobs) >= n_expected and states.isin(TERMINAL).all()) or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


# ----------------------------------------------------------------------- runs


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    run_id: str | None
    submitted: dict[str, str] = field(default_factory=dict)  # SLURM job id -> rule
    diagnostics: str = ""


def slurm_logs(workdir: Path, lines: int = 40) -> str:
    """Tails of the plugin's per-job logs (only failed jobs' logs are kept)."""
    parts = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        parts.append(f"----- {log.relative_to(workdir)} -----\n{tail}")
    return "\n".join(parts) or "(no slurm logs left in .snakemake/slurm_logs)"


def run_profile(workdir: Path) -> Run:
    t0 = time.monotonic()
    proc = subprocess.run(
        # snakemake ignores SIGTERM while jobs run: -k sends SIGKILL 15 s later
        ["timeout", "-k", "15", str(RUN_TIMEOUT), SNAKEMAKE, *PROFILE_ARGS],
        cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT + 60,
    )
    seconds = time.monotonic() - t0
    output = f"{proc.stdout}{proc.stderr}"
    run_id = m[1] if (m := RUN_ID.search(output)) else None
    run = Run(proc.returncode, output, seconds, run_id,
              {slurm_id: rule for _, slurm_id, rule in SUBMITTED.findall(output)})
    if proc.returncode != 0:
        run.diagnostics = (
            f"snakemake --profile slurm exited {proc.returncode} after {seconds:.0f} s"
            f"{' (timed out)' if proc.returncode in (124, 137) else ''}\n"
            f"{slurm_logs(workdir)}\n----- snakemake output (tail) -----\n{output[-8000:]}"
        )
        if run_id:  # a killed snakemake leaves its jobs queued
            subprocess.run(["scancel", "--name", run_id], capture_output=True, timeout=30)
    return run


def require_success(run: Run, details: bool = True) -> None:
    """Fail with the diagnostics (or, where ``details`` is false, a pointer to them)."""
    if run.returncode != 0:
        pytest.fail(run.diagnostics if details else
                    f"snakemake --profile slurm failed (exit {run.returncode}); the logs are shown by "
                    "test_workflow_runs_through_sbatch_end_to_end and in this test's captured setup output",
                    pytrace=False)


@pytest.fixture(scope="module")
def first_run(slurm_cluster, tmp_path_factory):
    """The default target of tests/configs/slurm.yaml, through sbatch, once."""
    workdir = make_workdir(tmp_path_factory.mktemp("slurm") / "plexus", "slurm.yaml")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 120))
    planned = rule_counts(planned_jobs(workdir))
    run = run_profile(workdir)
    jobs = sacct_final(run.run_id, since, len(run.submitted)) if run.run_id else sacct_since(since).iloc[:0]
    print(f"first run: {run.seconds:.1f} s, {len(run.submitted)} jobs submitted")
    if run.returncode != 0:
        print(run.diagnostics)
    if len(jobs):
        by_rule = defaultdict(list)
        for job in jobs.itertuples():
            by_rule[run.submitted.get(job.JobID, "?")].append(job.Elapsed)
        for rule, elapsed in sorted(by_rule.items()):
            print(f"  {rule:24s} {len(elapsed)} job(s), sacct Elapsed {', '.join(elapsed)}")
    return {"workdir": workdir, "run": run, "jobs": jobs, "planned": planned, "since": since}


# ----------------------------------------------------------------------- tests


def test_workflow_runs_through_sbatch_end_to_end(first_run):
    run, workdir = first_run["run"], first_run["workdir"]
    require_success(run)
    config = read_config(workdir)

    submission = pd.read_csv(workdir / "results" / "submission" / "main.csv", keep_default_na=False)
    synthetic = config["data"]["synthetic"]
    assert list(submission.columns) == ["img", "pixels"]
    assert len(submission) == synthetic["n_test_subjects"] * synthetic["test_images_per_subject"]

    names = list(config["models"]) + list(config["ensembles"])
    figures = [f"tuning/{n}_{kind}" for n in names for kind in ("heatmap", "min_area")]
    figures += [f"areas/{n}" for n in names]
    figures += [f"{kind}/{m}" for m in config["models"] for kind in ("learning_curves", "qualitative")]
    figures += ["robustness/noise"]
    for figure in figures:
        png = workdir / "results" / "figures" / f"{figure}.png"
        pdf = workdir / "results" / "figures" / f"{figure}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert pdf.read_bytes()[:5] == b"%PDF-", pdf
    for table in ("summary.csv", "summary.md"):
        assert (workdir / "results" / "tables" / table).stat().st_size > 0

    # every job of the DAG but the local `all` went through sbatch, exactly once
    expected = first_run["planned"] - Counter({"all": 1})
    assert Counter(run.submitted.values()) == expected, run.output[-6000:]
    assert GPU_RULES - {"predict_oof"} <= set(expected)  # predict_oof: the training-size runs', off here


def test_jobs_ran_on_the_right_partitions(first_run):
    run, jobs = first_run["run"], first_run["jobs"]
    require_success(run, details=False)
    assert run.run_id, "no 'SLURM run ID' in the output"
    # sacct knows exactly the jobs this run submitted (job name = the plugin's run ID)
    assert sorted(jobs["JobID"], key=int) == sorted(run.submitted, key=int), jobs.to_string()
    comments = stores_job_comment()
    if not comments:
        warnings.warn(stacklevel=2, message="the running cluster does not store job comments (started by an older "
                      "tests/slurm/start.sh?); jobs are matched to rules by their log paths only")
    wrong = []
    for job in jobs.itertuples():
        rule = run.submitted[job.JobID]
        gpu = rule in GPU_RULES
        ok = (
            job.State == "COMPLETED"
            and job.Partition == ("gpu" if gpu else "cpu")
            and (("gres/gpu=1" in job.AllocTRES.split(",")) if gpu else ("gres/gpu" not in job.AllocTRES))
            and (not comments or job.Comment == f"rule_{rule}" or job.Comment.startswith(f"rule_{rule}_wildcards_"))
        )
        if not ok:
            wrong.append(f"{rule}: {job}")
    assert not wrong, "\n".join(wrong)


def test_training_ran_inside_gpu_jobs(first_run):
    run, workdir = first_run["run"], first_run["workdir"]
    require_success(run, details=False)
    infos = sorted((workdir / "results" / "models").glob("*/fold*/train_info.json"))
    config = read_config(workdir)
    runs = list(config["models"]) + [f"{config['robustness']['model']}--noisy"]
    assert sorted(p.relative_to(workdir / "results" / "models").as_posix() for p in infos) == sorted(
        f"{r}/fold{f}/train_info.json" for r in runs for f in range(config["cv"]["n_folds"])
    )
    train_jobs = {job for job, rule in run.submitted.items() if rule == "train"}
    seen = []
    for path in infos:
        info = json.loads(path.read_text())
        assert info["slurm_job_partition"] == "gpu", path
        assert info["slurm_job_id"] in train_jobs, (path, info["slurm_job_id"], train_jobs)
        assert info["cuda_visible_devices"] in ("0", "1"), path  # Slurm handed the job one of the (fake) GPUs
        seen.append(info["slurm_job_id"])
    assert sorted(seen) == sorted(train_jobs)


def test_second_run_submits_nothing(first_run):
    require_success(first_run["run"], details=False)
    before = len(sacct_since(first_run["since"]))
    run = run_profile(first_run["workdir"])
    print(f"second run: {run.seconds:.1f} s")
    require_success(run)
    assert "Nothing to be done" in run.output, run.output[-4000:]
    assert not run.submitted and "has been submitted" not in run.output, run.output[-4000:]
    if run.run_id:
        assert len(sacct_since(first_run["since"], "--name", run.run_id)) == 0
    assert len(sacct_since(first_run["since"])) == before
