"""A training job killed mid-epoch resumes from its checkpoint and finishes exactly.

The issue: "A training job killed mid-run must resume from its last epoch
checkpoint when rerun (``--rerun-incomplete`` or a retry) and finish with the same
result on CPU as an uninterrupted run with the same seed. Outputs are written
atomically: a killed job never leaves a file that Snakemake or the next stage
would take for complete."

Two copies of the workflow (tests/configs/tiny.yaml, with model ``unet`` made big
enough that an epoch takes about a second on one CPU thread) train
``unet``/fold 0 through Snakemake: copy A without interruption; copy B is
SIGKILLed (the whole Snakemake process group, as a scheduler or an OOM killer
would) in the middle of epoch 3, then rerun with ``--rerun-incomplete``; in
copy C Snakemake runs with ``--retries 1`` and only the training job's process
is SIGKILLed mid-epoch, so that Snakemake itself retries it. The weights of A,
B and C must be bit-identical and their histories equal but for the timing
column.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from workflow_helpers import (
    JOB_HEADER,
    SNAKEMAKE,
    make_workdir,
    read_config,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow

RUN, FOLD = "unet", 0
TARGET = f"results/models/{RUN}/fold{FOLD}/model.pt"
OUT_DIR = f"results/models/{RUN}/fold{FOLD}"
OUTPUTS = ["model.pt", "history.csv", "train_info.json"]
CHECKPOINT = f"results/checkpoints/{RUN}/fold{FOLD}.pt"
TRAIN_LOG = f"results/logs/train/{RUN}/fold{FOLD}.log"
EPOCHS = 6
KILL_AFTER_EPOCH = 2  # kill half-way through the epoch after this one
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) .* ([0-9.]+)s$")


def resume_workdir(target):
    """tiny.yaml, with ``unet`` at 192x256, 8 base channels, 6 epochs (~1 s an epoch)."""
    workdir = make_workdir(target, "tiny.yaml")
    config = read_config(workdir)
    config["models"][RUN].update(input_size=[192, 256], base_channels=8, epochs=EPOCHS)
    write_config(workdir, config)
    return workdir


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A workdir with everything upstream of training done, to be copied (saves ~15 s a copy)."""
    workdir = resume_workdir(tmp_path_factory.mktemp("resume") / "prepared")
    snakemake(workdir, "--cores", "2", "results/preprocessed/192x256/train.npz", "results/splits/folds.csv")
    return workdir


def clone(prepared, target):
    """A copy of ``prepared`` (files, modification times and Snakemake's metadata)."""
    shutil.copytree(prepared, target, symlinks=True)
    return target


def executed_rules(output: str) -> list[str]:
    """The rules of the jobs a (non-dry) Snakemake run started, from its output."""
    return [m[1] for line in output.splitlines() if (m := JOB_HEADER.match(line.strip()))]


def finished_epochs(log_text: str) -> list[tuple[int, float]]:
    """(epoch, seconds) of every ``epoch k/N ... 1.0s`` line of a train log."""
    return [
        (int(m[1]), float(m[3]))
        for line in log_text.splitlines()
        if (m := EPOCH_LINE.match(line.strip()))
    ]


def training_process(snakemake_pid: int) -> psutil.Process:
    """The python process running the train rule's script under Snakemake
    (not a shell wrapping it: killing that would leave the training running)."""
    found = []
    for child in psutil.Process(snakemake_pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmdline and Path(cmdline[0]).name.startswith("python") and any(
            arg.endswith(".train.py") for arg in cmdline[1:]
        ):
            found.append(child)
    assert len(found) == 1, f"not exactly one process runs the train script: {found}"
    return found[0]


def run_and_kill_mid_epoch(workdir, *extra_args, kill="group", timeout=240):
    """Start ``snakemake --cores 1 TARGET``; half-way through epoch KILL_AFTER_EPOCH + 1
    SIGKILL its whole process group (``kill="group"``), or only the training job's
    process (``kill="job"``; Snakemake lives on and is waited for).
    Returns the train log at the kill and Snakemake's output."""
    log = workdir / TRAIN_LOG
    checkpoint = workdir / CHECKPOINT
    out_path = workdir / f"snakemake-kill-{kill}.out"
    out = out_path.open("w")
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", *extra_args, TARGET],
        cwd=workdir,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill reaches the job too
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"snakemake ended (rc {proc.returncode}) before it could be killed:\n"
                    + out_path.read_text()[-4000:]
                )
            assert time.monotonic() < deadline, "training did not reach epoch 2 in time"
            text = log.read_text() if log.exists() else ""
            done = finished_epochs(text)
            # the epoch line is logged just before that epoch's checkpoint is written
            if checkpoint.exists() and any(e >= KILL_AFTER_EPOCH for e, _ in done):
                break
            time.sleep(0.02)
        # the checkpoint of epoch 2 is written (milliseconds) after its line; half an
        # epoch later training is in the middle of epoch 3
        seconds = max(s for _, s in done)
        time.sleep(max(0.5 * seconds, 0.2))
        assert proc.poll() is None, "snakemake finished before it could be killed"
        if kill == "job":
            victim = training_process(proc.pid)
            log_at_kill = log.read_text()
            victim.kill()
            victim.wait(timeout=30)
            proc.wait(timeout=timeout)  # Snakemake retries the job
            return log_at_kill, out_path.read_text(), proc.returncode
        log_at_kill = log.read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    # wait for the rest of the group (the job's python) to be gone before rerunning
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("processes of the killed snakemake survived SIGKILL")
    return log_at_kill, out_path.read_text(), proc.returncode


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    a = clone(prepared, base / "uninterrupted")
    b = clone(prepared, base / "killed")
    t0 = time.monotonic()
    uninterrupted = snakemake(a, "--cores", "1", TARGET)
    t_a = time.monotonic() - t0
    # the copies of `prepared` only need the training job
    assert executed_rules(uninterrupted.stderr) == ["train"], uninterrupted.stderr[-4000:]

    t0 = time.monotonic()
    log_at_kill, _, _ = run_and_kill_mid_epoch(b)
    t_kill = time.monotonic() - t0
    after_kill = {name: (b / OUT_DIR / name).exists() for name in OUTPUTS}
    leftovers = sorted(p.name for p in (b / OUT_DIR).glob("*")) if (b / OUT_DIR).exists() else []
    checkpoint_after_kill = b / CHECKPOINT
    checkpoint_epoch = (
        torch.load(checkpoint_after_kill, map_location="cpu", weights_only=True)["epoch"]
        if checkpoint_after_kill.exists()
        else None
    )

    # The killed Snakemake left its lock behind: remove it, as `snakemake --unlock` does
    # (one Snakemake start less: each costs ~9 s here while the test Slurm cluster is
    # down, see test_slurm_workflow.py)
    locks = b / ".snakemake" / "locks"
    assert any(locks.iterdir()), "expected the stale lock of the killed snakemake"
    shutil.rmtree(locks)
    t0 = time.monotonic()
    rerun = snakemake(b, "--cores", "1", "--rerun-incomplete", TARGET)
    t_rerun = time.monotonic() - t0
    print(f"uninterrupted {t_a:.1f}s, run until kill {t_kill:.1f}s, rerun {t_rerun:.1f}s")
    return {
        "a": a,
        "b": b,
        "log_at_kill": log_at_kill,
        "after_kill": after_kill,
        "leftovers": leftovers,
        "checkpoint_epoch": checkpoint_epoch,
        "rerun": rerun,
    }


def test_kill_landed_mid_training_and_left_nothing_complete(runs):
    done = [e for e, _ in finished_epochs(runs["log_at_kill"])]
    assert KILL_AFTER_EPOCH <= len(done) < EPOCHS, runs["log_at_kill"]
    # atomic writes: no output of the killed job exists, not even a partial one
    assert not any(runs["after_kill"].values()), runs["after_kill"]
    assert runs["leftovers"] == [], runs["leftovers"]
    # the checkpoint survives the kill (it is no declared output) and holds a finished epoch
    assert runs["checkpoint_epoch"] is not None, "no checkpoint after the kill"
    assert KILL_AFTER_EPOCH <= runs["checkpoint_epoch"] <= max(done)


def test_rerun_resumed_from_the_checkpoint(runs):
    b = runs["b"]
    info = json.loads((b / OUT_DIR / "train_info.json").read_text())
    assert info["resumed_from_epoch"] >= 1
    assert info["resumed_from_epoch"] == runs["checkpoint_epoch"]
    assert info["epochs"] == EPOCHS
    log = (b / TRAIN_LOG).read_text()
    assert f"resuming from checkpoint {CHECKPOINT} after epoch {runs['checkpoint_epoch']}/{EPOCHS}" in log
    # only the remaining epochs were trained again
    assert [e for e, _ in finished_epochs(log)] == list(range(runs["checkpoint_epoch"] + 1, EPOCHS + 1))
    # the checkpoint is removed once the job succeeded; no temporaries are left
    assert not (b / CHECKPOINT).exists()
    assert not list((b / CHECKPOINT).parent.glob(".*"))
    assert not list((b / OUT_DIR).glob(".*"))
    a_info = json.loads((runs["a"] / OUT_DIR / "train_info.json").read_text())
    assert a_info["resumed_from_epoch"] == 0


def test_resumed_result_equals_uninterrupted_run(runs):
    a = torch.load(runs["a"] / OUT_DIR / "model.pt", map_location="cpu", weights_only=True)
    b = torch.load(runs["b"] / OUT_DIR / "model.pt", map_location="cpu", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert not different, f"weights differ after resume: {different}"
    assert (a["mean"], a["std"]) == (b["mean"], b["std"])
    assert {k: v for k, v in a.items() if k != "state_dict"} == {k: v for k, v in b.items() if k != "state_dict"}
    history_a = pd.read_csv(runs["a"] / OUT_DIR / "history.csv")
    history_b = pd.read_csv(runs["b"] / OUT_DIR / "history.csv")
    assert list(history_a["epoch"]) == list(range(1, EPOCHS + 1))
    pd.testing.assert_frame_equal(
        history_a.drop(columns="seconds"), history_b.drop(columns="seconds"), check_exact=True
    )


def test_nothing_left_to_do_after_the_rerun(runs):
    # no incomplete marker or stale output left: Snakemake takes the result as complete
    out = snakemake(runs["b"], "-n", TARGET).stdout
    assert "Nothing to be done" in out, out
    assert executed_rules(runs["rerun"].stderr) == ["train"]


def test_retry_of_a_killed_job_resumes_and_matches(runs, prepared, tmp_path_factory):
    """Snakemake alive, its training job SIGKILLed mid-epoch: the retry resumes (--retries)."""
    c = clone(prepared, tmp_path_factory.mktemp("resume") / "retried")
    t0 = time.monotonic()
    log_at_kill, output, returncode = run_and_kill_mid_epoch(c, "--retries", "1", kill="job")
    print(f"run with a killed and retried job {time.monotonic() - t0:.1f}s")
    assert returncode == 0, output[-6000:]
    done = [e for e, _ in finished_epochs(log_at_kill)]
    assert KILL_AFTER_EPOCH <= len(done) < EPOCHS, log_at_kill
    # the job failed once and was run a second time
    assert "Error in rule train" in output, output[-6000:]
    assert len(re.findall(r"^(?:local)?rule train:$", output, re.MULTILINE)) == 2, output[-6000:]
    info = json.loads((c / OUT_DIR / "train_info.json").read_text())
    assert info["resumed_from_epoch"] >= KILL_AFTER_EPOCH
    assert f"resuming from checkpoint {CHECKPOINT}" in (c / TRAIN_LOG).read_text()
    assert not (c / CHECKPOINT).exists()
    a = torch.load(runs["a"] / OUT_DIR / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(c / OUT_DIR / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(
        pd.read_csv(runs["a"] / OUT_DIR / "history.csv").drop(columns="seconds"),
        pd.read_csv(c / OUT_DIR / "history.csv").drop(columns="seconds"),
        check_exact=True,
    )
