"""Training: it learns, writes the documented files, and resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

import plexus.training.loop
from plexus.inference.predict import predict_probs
from plexus.training.loop import HISTORY_COLUMNS, TrainingDiverged, epoch_seed, train_model
from plexus.training.settings import TrainSettings

AUGMENT = {"hflip": 0.5, "vflip": 0.5, "shift": 0.1, "rotate": 10, "shear": 5, "zoom": 0.1}
NO_AUGMENT = dict.fromkeys(AUGMENT, 0.0)  # a partial augment entry takes the schema's defaults for the rest
NOISE = {"sigma": 20.0, "fraction": 0.5, "seed": 3}


def synthetic(n, h=32, w=48, seed=0):
    """Bright squares on dark noise; every other image is empty."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 110, (n, h, w)).astype(np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(0, n, 2):
        r, c = rng.integers(2, h - 12), rng.integers(2, w - 12)
        masks[i, r : r + 10, c : c + 10] = 1
        images[i, r : r + 10, c : c + 10] += 120
    return images, masks


def entry(**overrides) -> dict:
    """A model entry of the config (as a dict)."""
    s = {
        "arch": "unet",
        "input_size": [32, 48],
        "base_channels": 4,
        "depth": 2,
        "dropout": 0.2,
        "loss": "neg_log_dice",
        "presence_weight": 0.5,
        "optimizer": "adam",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "epochs": 3,
        "batch_size": 8,
        "augment": NO_AUGMENT,
        "seed": 1,
    }
    s.update(overrides)
    return s


def settings(**overrides) -> TrainSettings:
    return TrainSettings.from_config(entry(**overrides))


class Stop(Exception):
    pass


def stop_after(k):
    def hook(epoch, row):
        if epoch == k:
            raise Stop(epoch)

    return hook


def assert_same_result(dir_a, dir_b):
    a = torch.load(dir_a / "model.pt", weights_only=True)
    b = torch.load(dir_b / "model.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert (a["mean"], a["std"]) == (b["mean"], b["std"])
    ha = pd.read_csv(dir_a / "history.csv").drop(columns="seconds")
    hb = pd.read_csv(dir_b / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)


def test_epoch_seed_is_stable():
    assert epoch_seed(1, 2) == epoch_seed(1, 2)
    assert len({epoch_seed(1, 1), epoch_seed(1, 2), epoch_seed(2, 1)}) == 3


def test_training_learns_and_writes_documented_outputs(tmp_path):
    images, masks = synthetic(96)
    ck = tmp_path / "ck" / "fold0.pt"
    out = tmp_path / "out"
    logs = []
    threads_before = torch.get_num_threads()
    summary = train_model(
        images,
        masks,
        np.arange(72),
        np.arange(72, 96),
        settings(epochs=4, augment={**NO_AUGMENT, "hflip": 0.5}),
        out,
        checkpoint_path=ck,
        threads=1,
        log=logs.append,
    )
    assert torch.get_num_threads() == threads_before
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS
    assert HISTORY_COLUMNS == ["epoch", "train_loss", "val_loss", "val_dice", "val_on", "lr", "seconds"]
    assert hist["epoch"].tolist() == [1, 2, 3, 4]
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert hist["val_dice"].between(0, 1).all()
    assert len([line for line in logs if line.startswith("epoch ")]) == 4
    assert "val_dice" in logs[-1]

    info = json.loads((out / "train_info.json").read_text())
    assert info["device"] == "cpu" and info["threads"] == 1 and info["epochs"] == 4
    assert info["resumed_from_epoch"] == 0 and info["torch_version"] == torch.__version__
    for key in ("slurm_job_id", "slurm_job_partition", "cuda_visible_devices", "seconds"):
        assert key in info

    saved = torch.load(out / "model.pt", weights_only=True)
    for key in ("arch", "model_kwargs", "state_dict", "mean", "std", "input_size", "settings"):
        assert key in saved
    assert saved["arch"] == "unet" and saved["input_size"] == [32, 48]
    assert saved["settings"] == settings(epochs=4, augment={**NO_AUGMENT, "hflip": 0.5}).to_dict()
    assert saved["weights"] == "final" and saved["epochs"] == 4
    # the default amp_dtype float16 does not autocast on the CPU: float32 throughout
    assert info["amp"] is False and info["amp_dtype"] is None
    assert info["channels_last"] is True and info["deterministic"] is True
    train_px = images[:72].astype(np.float64)
    assert saved["mean"] == pytest.approx(train_px.mean()) and saved["std"] == pytest.approx(train_px.std())
    assert not ck.exists(), "checkpoint must be removed after success"
    assert summary["epochs"] == 4 and summary["device"] == "cpu"
    assert summary["val_dice"] == pytest.approx(hist["val_dice"].iloc[-1])


def test_input_validation(tmp_path):
    images, masks = synthetic(8)
    kw = dict(checkpoint_path=tmp_path / "ck.pt", log=lambda s: None)
    with pytest.raises(ValueError, match="non-empty"):
        train_model(images, masks, np.arange(8), np.arange(0), settings(), tmp_path, **kw)
    with pytest.raises(ValueError, match="input_size"):
        train_model(images, masks, np.arange(6), np.arange(6, 8), settings(input_size=[64, 80]), tmp_path, **kw)
    with pytest.raises(ValueError, match="optimizer"):
        settings(optimizer="lbfgs")
    with pytest.raises(ValueError, match="loss"):
        settings(loss="focal")
    with pytest.raises(TypeError, match="TrainSettings"):
        train_model(images, masks, np.arange(6), np.arange(6, 8), entry(), tmp_path, **kw)


# ---------------------------------------------------------------- resume

RESUME_N, RESUME_TRAIN = 300, 240
RESUME_ENTRY = entry(arch="unet2head", epochs=4, augment=AUGMENT, optimizer="adamw", weight_decay=1e-4)
RESUME_SETTINGS = TrainSettings.from_config(RESUME_ENTRY)


@pytest.fixture(scope="module")
def resume_data():
    return synthetic(RESUME_N, seed=5)


def _resume_args(resume_data):
    images, masks = resume_data
    return images, masks, np.arange(RESUME_TRAIN), np.arange(RESUME_TRAIN, RESUME_N)


@pytest.fixture(scope="module")
def reference(resume_data, tmp_path_factory):
    """The uninterrupted run every resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("reference")
    train_model(
        *_resume_args(resume_data),
        RESUME_SETTINGS,
        out,
        checkpoint_path=out / "ck.pt",
        threads=1,
        noise=NOISE,
        log=lambda s: None,
    )
    return out


def test_resume_in_process_is_exact(reference, resume_data, tmp_path):
    out, ck = tmp_path / "out", tmp_path / "ck.pt"
    kw = dict(checkpoint_path=ck, threads=1, noise=NOISE, log=lambda s: None)
    with pytest.raises(Stop):
        train_model(*_resume_args(resume_data), RESUME_SETTINGS, out, on_epoch_end=stop_after(2), **kw)
    assert ck.exists()
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()
    logs = []
    summary = train_model(*_resume_args(resume_data), RESUME_SETTINGS, out, **{**kw, "log": logs.append})
    assert summary["resumed_from_epoch"] == 2
    assert any("resuming" in line for line in logs)
    assert [line.split()[1] for line in logs if line.startswith("epoch ")] == ["3/4", "4/4"]
    assert json.loads((out / "train_info.json").read_text())["resumed_from_epoch"] == 2
    assert_same_result(reference, out)
    assert not ck.exists()


def test_resume_after_sigkill_is_exact(reference, resume_data, tmp_path):
    images, masks, train_idx, val_idx = _resume_args(resume_data)
    data = tmp_path / "data.npz"
    np.savez(data, images=images, masks=masks, train_idx=train_idx, val_idx=val_idx)
    out, ck, logfile = tmp_path / "out", tmp_path / "ck" / "fold0.pt", tmp_path / "log.txt"
    script = textwrap.dedent(f"""
        import json, numpy as np
        from plexus.training.loop import train_model
        from plexus.training.settings import TrainSettings
        d = np.load({str(data)!r})
        settings = TrainSettings.from_config(json.loads({json.dumps(RESUME_ENTRY)!r}))
        train_model(d["images"], d["masks"], d["train_idx"], d["val_idx"], settings,
                    {str(out)!r}, checkpoint_path={str(ck)!r}, threads=1, noise=json.loads({json.dumps(NOISE)!r}),
                    log=lambda s: print(s, flush=True))
        """)
    with open(logfile, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ck.exists():  # end of epoch 1
            assert proc.poll() is None, logfile.read_text()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        # the epoch-1 line was logged before its checkpoint: sleep half an epoch
        first = next(line for line in logfile.read_text().splitlines() if line.startswith("epoch 1/"))
        time.sleep(0.5 * float(first.split()[-1].rstrip("s")))  # now inside epoch 2
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_epochs = [line for line in logfile.read_text().splitlines() if line.startswith("epoch ")]
    assert 1 <= len(done_epochs) < RESUME_SETTINGS.epochs
    # atomic writes: nothing in out_dir looks complete
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()
    assert not (out / "train_info.json").exists()
    assert ck.exists()

    summary = train_model(
        images,
        masks,
        train_idx,
        val_idx,
        RESUME_SETTINGS,
        out,
        checkpoint_path=ck,
        threads=1,
        noise=NOISE,
        log=lambda s: None,
    )
    assert summary["resumed_from_epoch"] >= 1
    assert_same_result(reference, out)
    assert not ck.exists()


def _interrupt_after_first_epoch(args, out, ck):
    """Train 2 epochs of the default settings, stopping after the first checkpoint."""
    with pytest.raises(Stop):
        train_model(*args, settings(epochs=2), out, checkpoint_path=ck, threads=1, log=lambda s: None,
                    on_epoch_end=stop_after(1))


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    images, masks = synthetic(48)
    args = (images, masks, np.arange(32), np.arange(32, 48))
    ck, out = tmp_path / "ck.pt", tmp_path / "out"
    _interrupt_after_first_epoch(args, out, ck)
    assert ck.exists()
    logs = []
    summary = train_model(*args, settings(epochs=2, lr=1e-2), out, checkpoint_path=ck, threads=1, log=logs.append)
    assert summary["resumed_from_epoch"] == 0
    assert any("ignoring checkpoint" in line for line in logs)
    assert [line.split()[1] for line in logs if line.startswith("epoch ")] == ["1/2", "2/2"]
    # other split -> also ignored
    _interrupt_after_first_epoch(args, out, ck)
    logs = []
    summary = train_model(
        images,
        masks,
        np.arange(1, 33),
        np.arange(33, 48),
        settings(epochs=2),
        out,
        checkpoint_path=ck,
        threads=1,
        log=logs.append,
    )
    assert summary["resumed_from_epoch"] == 0 and any("ignoring checkpoint" in line for line in logs)


def test_sgd_and_noise_run(tmp_path):
    images, masks = synthetic(32)
    summary = train_model(
        images,
        masks,
        np.arange(24),
        np.arange(24, 32),
        settings(epochs=1, optimizer="sgd", loss="bce_dice"),
        tmp_path,
        checkpoint_path=tmp_path / "ck.pt",
        threads=1,
        noise=NOISE,
        log=lambda s: None,
    )
    assert np.isfinite(summary["train_loss"])


# ---------------------------------------------------------------- divergence


def test_divergence_is_an_error_naming_model_fold_and_epoch(tmp_path):
    images, masks = synthetic(32)
    out, ck = tmp_path / "out", tmp_path / "ck.pt"
    logs = []
    with pytest.raises(TrainingDiverged, match=r"model unet, fold 2: training diverged at epoch 1 \(train_loss nan"):
        train_model(images, masks, np.arange(24), np.arange(24, 32), settings(lr=1e6), out, checkpoint_path=ck,
                    run_name="unet", fold=2, threads=1, log=logs.append)
    assert any(line.startswith("epoch 1/3 train_loss nan") for line in logs)
    assert not ck.exists(), "the non-finite epoch's checkpoint must not be written"
    for name in ("model.pt", "history.csv", "train_info.json"):
        assert not (out / name).exists(), name


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
    images, masks = synthetic(32)
    out, ck = tmp_path / "out", tmp_path / "ck.pt"
    real_epoch = plexus.training.loop._train_epoch
    calls = []

    def nan_at_epoch_2(*args, **kwargs):
        calls.append(1)
        loss = real_epoch(*args, **kwargs)
        return float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(plexus.training.loop, "_train_epoch", nan_at_epoch_2)
    with pytest.raises(TrainingDiverged, match="epoch 2") as err:
        train_model(images, masks, np.arange(24), np.arange(24, 32), settings(), out, checkpoint_path=ck,
                    run_name="unet2", fold=0, threads=1, log=lambda s: None)
    assert isinstance(err.value, ValueError)
    assert (err.value.run_name, err.value.fold, err.value.epoch) == ("unet2", 0, 2)
    assert f"the checkpoint of epoch 1 is kept at {ck}" in str(err.value)
    kept = torch.load(ck, weights_only=True)
    assert kept["epoch"] == 1 and [row["epoch"] for row in kept["history"]] == [1]
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()


# ---------------------------------------------------------------- mixed precision on the CPU


def test_bfloat16_amp_trains_and_predicts_on_cpu(tmp_path):
    """CPU bfloat16 autocast is a real path of torch.autocast: it runs the AMP code in CI."""
    images, masks = synthetic(48)
    out = tmp_path / "out"
    train_model(images, masks, np.arange(32), np.arange(32, 48), settings(epochs=2, amp=True, amp_dtype="bfloat16"),
                out, checkpoint_path=tmp_path / "ck.pt", device="cpu", threads=1, log=lambda s: None)
    hist = pd.read_csv(out / "history.csv")
    assert hist["epoch"].tolist() == [1, 2]
    assert np.isfinite(hist[["train_loss", "val_loss", "val_dice"]].to_numpy()).all()
    info = json.loads((out / "train_info.json").read_text())
    assert info["amp"] is True and info["amp_dtype"] == "bfloat16"
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["settings"]["amp"] is True and saved["settings"]["amp_dtype"] == "bfloat16"
    assert all(t.dtype == torch.float32 for t in saved["state_dict"].values() if t.is_floating_point())
    prob = predict_probs(out / "model.pt", images[32:], batch_size=8, device="cpu", threads=1)["prob"]
    assert prob.shape == (16, 32, 48) and np.isfinite(prob).all() and 0 <= prob.min() <= prob.max() <= 1
    # prediction autocasts too: the same weights predicted in float32 differ, slightly
    torch.save({**saved, "settings": {**saved["settings"], "amp": False}}, tmp_path / "fp32.pt")
    ref = predict_probs(tmp_path / "fp32.pt", images[32:], batch_size=8, device="cpu", threads=1)["prob"]
    assert not np.array_equal(prob, ref)
    np.testing.assert_allclose(prob.astype(np.float32), ref.astype(np.float32), atol=0.1)


@pytest.mark.parametrize("arch", ["attention_unet", "unetpp"])
def test_any_arch_trains_with_a_presence_head(tmp_path, arch):
    """``presence_head: true`` is the two-head variant of any registered arch."""
    images, masks = synthetic(32)
    out = tmp_path / "out"
    train_model(images, masks, np.arange(24), np.arange(24, 32), settings(epochs=1, arch=arch, presence_head=True),
                out, checkpoint_path=tmp_path / "ck.pt", device="cpu", threads=1, log=lambda s: None)
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["arch"] == arch and saved["model_kwargs"]["presence_head"] is True
    result = predict_probs(out / "model.pt", images[24:], batch_size=8, device="cpu", threads=1, presence_gate=None)
    assert result["presence"].shape == (8,) and np.isfinite(result["prob"]).all()


def test_presence_head_on_unet2head_is_refused():
    with pytest.raises(ValueError, match="presence_head"):
        settings(arch="unet2head", presence_head=True)
