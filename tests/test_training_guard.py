"""The stable recipe, the collapse guard, the inner validation split and ignored pixels (issue 22)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_train import Stop, assert_same_result, settings, stop_after, synthetic

import plexus.training.loop as loop
from plexus.labels import IGNORE_LABEL
from plexus.report import figures
from plexus.report.tables import training_health
from plexus.training.augment import augment_batch
from plexus.training.guard import inner_split
from plexus.training.loop import TrainingCollapsed, train_model
from plexus.training.losses import ce_loss, floored_neg_log, mc_neg_log_dice_loss, multiclass_soft_dice
from plexus.training.optim import lr_factor

QUIET = {"log": lambda s: None, "threads": 1, "device": "cpu"}


# ---------------------------------------------------------------- the recipe


def test_lr_schedules_decay_to_zero_after_a_linear_warmup():
    poly = settings(scheduler="poly", warmup_epochs=2, epochs=10)
    assert lr_factor(poly, 1) == pytest.approx(1 / 3) and lr_factor(poly, 2) == pytest.approx(2 / 3 * 0.9 ** 0.9)
    assert lr_factor(poly, 3) == pytest.approx(0.8 ** 0.9)
    assert lr_factor(poly, 10) == pytest.approx(0.1 ** 0.9)
    cosine = settings(scheduler="cosine", warmup_epochs=0, epochs=4)
    assert [lr_factor(cosine, e) for e in (1, 2, 3)] == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5])
    assert lr_factor(settings(scheduler="none"), 7) == 1.0
    defaults = settings()
    assert (defaults.scheduler, defaults.grad_clip, defaults.log_dice_floor) == ("poly", 12.0, 0.01)
    assert (defaults.on_collapse, defaults.validation, defaults.patience) == ("recover", "auto", 0)
    assert (defaults.collapse_share, defaults.refit, defaults.validation_images) == (0.5, False, "oof")


def test_floored_neg_log_dice_keeps_value_above_and_bounds_gradient_below():
    dice = torch.tensor([0.5, 0.02, 1e-6, 0.0], requires_grad=True)
    loss = floored_neg_log(dice, 0.02)
    loss.sum().backward()
    assert loss[0].item() == pytest.approx(-math.log(0.5)) and loss[1].item() == pytest.approx(-math.log(0.02))
    assert torch.isfinite(loss).all() and torch.isfinite(dice.grad).all()
    assert dice.grad.abs().max().item() == pytest.approx(1 / 0.02)  # the plain -log gives 1e6 at 1e-6
    plain = torch.tensor(1e-6, requires_grad=True)
    floored_neg_log(plain, 0.0).backward()
    assert plain.grad.item() == pytest.approx(-1e6)


# ---------------------------------------------------------------- ignored pixels


def _one_hot_with_ignored(labels: torch.Tensor, k: int) -> torch.Tensor:
    labelled = labels != IGNORE_LABEL
    y = F.one_hot(torch.where(labelled, labels, 0).long(), k) * labelled.unsqueeze(-1)
    return y.permute(0, 3, 1, 2).float()


def test_ignored_pixel_counts_in_no_loss_term():
    """A 2x2 image with one ignored pixel: the loss is the loss of the 3 other pixels."""
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[0.0, 1.0], [1.5, 3.0]], [[-1.0, 0.0], [0.0, 2.0]]]])
    labels = torch.tensor([[[0, 1], [2, IGNORE_LABEL]]])
    target = _one_hot_with_ignored(labels, 3)
    assert target[0, :, 1, 1].sum() == 0
    # by hand: mean over the 3 labelled pixels of -log softmax at the true class
    logp = torch.log_softmax(logits, 1)[0]
    by_hand = -(logp[0, 0, 0] + logp[1, 0, 1] + logp[2, 1, 0]) / 3
    assert ce_loss(logits, target).item() == pytest.approx(by_hand.item())
    # the same 3 pixels as a 1x3 image, nothing ignored
    three_logits = logits[:, :, [0, 0, 1], [0, 1, 0]][..., None]
    three_target = target[:, :, [0, 0, 1], [0, 1, 0]][..., None]
    for per_image in (True, False):
        assert mc_neg_log_dice_loss(logits, target, per_image=per_image).item() == pytest.approx(
            mc_neg_log_dice_loss(three_logits, three_target, per_image=per_image).item())
    probs = torch.softmax(logits, 1)
    p, t = probs[0, 1:, [0, 0, 1], [0, 1, 0]], target[0, 1:, [0, 0, 1], [0, 1, 0]]
    dice_by_hand = ((2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()
    assert multiclass_soft_dice(probs, target).item() == pytest.approx(dice_by_hand.item())
    # an all-ignored batch gives 0, not NaN
    assert ce_loss(logits, torch.zeros_like(target)).item() == 0.0


def test_ignored_pixels_leave_the_validation_dice_and_stay_ignored_in_augmentation():
    setup = loop._Setup(device=torch.device("cpu"), mean=0.0, std=1.0, batch_size=1, seg_loss=None,
                        presence_weight=0.0, two_head=False, augment=None, n_classes=3)
    images = torch.zeros(1, 2, 2, dtype=torch.uint8)
    masks = torch.tensor([[[0, 1], [2, IGNORE_LABEL]]], dtype=torch.uint8)
    _, y = loop._batch(images, masks, torch.tensor([0]), setup)
    assert torch.equal(y, _one_hot_with_ignored(masks, 3))
    pred = torch.tensor([[[0, 1], [2, 1]]])  # wrong only at the ignored pixel
    assert loop._class_dice(pred, y.argmax(1), 3, y.amax(1) > 0).item() == 1.0
    assert loop._class_dice(pred, y.argmax(1), 3).item() < 1.0

    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 4:12, 2:6] = 1
    labels[:, 4:12, 9:14] = IGNORE_LABEL
    onehot = _one_hot_with_ignored(labels, 2)
    params = {"hflip": 1.0}
    _, out = augment_batch(torch.zeros(2, 1, 16, 16), onehot, params, torch.Generator().manual_seed(0))
    assert torch.equal(out, onehot.flip(-1))
    _, out = augment_batch(torch.zeros(2, 1, 16, 16), onehot, {"rotate": 10, "shift": 0.05},
                           torch.Generator().manual_seed(1))
    ignored = out.sum(1) == 0
    assert ignored[:, 6:10, 10:13].all()  # the inner part of the ignored block stays ignored
    assert ignored.sum() < (labels == IGNORE_LABEL).sum() * 1.5 and not ignored[:, :, :7].any()


def test_training_with_ignored_pixels_runs_and_binary_refuses_255(tmp_path):
    images, masks = synthetic(24)
    masks[:, :4] = IGNORE_LABEL
    summary = train_model(images, masks, np.arange(16), np.arange(16, 24), settings(epochs=1), tmp_path / "a",
                          checkpoint_path=tmp_path / "a.pt", n_classes=2, **QUIET)
    assert math.isfinite(summary["train_loss"]) and 0 <= summary["val_dice"] <= 1
    masks[0, 0, 0] = 3
    with pytest.raises(ValueError, match="class 3"):
        train_model(images, masks, np.arange(16), np.arange(16, 24), settings(epochs=1), tmp_path / "b",
                    checkpoint_path=tmp_path / "b.pt", n_classes=2, **QUIET)


# ---------------------------------------------------------------- the collapse guard

SPIKE = 6.0


@pytest.fixture
def spike(monkeypatch):
    """Multiply the training loss (value and gradient) by SPIKE in the epochs of ``spike.epochs``."""
    original = loop._run_epoch

    def run_epoch(run, model, optimizer, scaler, setup, data, epoch):
        if epoch not in run_epoch.epochs:
            return original(run, model, optimizer, scaler, setup, data, epoch)
        loss = setup.seg_loss
        setup.seg_loss = lambda logits, target: SPIKE * loss(logits, target)
        try:
            return original(run, model, optimizer, scaler, setup, data, epoch)
        finally:
            setup.seg_loss = loss

    run_epoch.epochs = set()
    monkeypatch.setattr(loop, "_run_epoch", run_epoch)
    return run_epoch


def _guarded(tmp_path, name, **overrides):
    images, masks = synthetic(48, seed=2)
    out = tmp_path / name
    logs = []
    kw = {**QUIET, "log": logs.append}
    summary = train_model(images, masks, np.arange(36), np.arange(36, 48), settings(epochs=9, **overrides), out,
                          checkpoint_path=tmp_path / f"{name}.pt", run_name="unet", fold=2, **kw)
    return out, summary, logs


# the guard arms once the best loss is 10% below the first (collapse_min_progress): here after epoch 5
SPIKED = {6, 7, 8}


def test_collapse_is_caught_by_each_mode(spike, tmp_path):
    spike.epochs = SPIKED
    out, summary, logs = _guarded(tmp_path, "recover", on_collapse="recover")
    info = json.loads((out / "train_info.json").read_text())
    (event,) = info["collapse_events"]
    assert (event["first_epoch"], event["epoch"], event["best_epoch"], event["action"]) == (6, 8, 5, "recovered")
    assert event["lr_scale"] == 0.5
    # the threshold recorded is the rule's, by hand from the history: best + 0.5 x (first - best)
    hist = pd.read_csv(out / "history.csv")
    first, best = hist["train_loss"].iloc[0], hist["train_loss"].iloc[4]
    assert (event["first_loss"], event["best_loss"]) == pytest.approx((first, best))
    assert event["threshold"] == pytest.approx(best + 0.5 * (first - best))
    assert min(event["losses"]) > event["threshold"]
    assert info["training_health"] == summary["training_health"] == "recovered 1x (epoch 8)"
    assert any("training collapsed" in line and "reloaded the weights of epoch 5" in line for line in logs)
    assert training_health({"unet": [{"training_health": "ok", "collapse_events": []}, info]}) == \
        "recovered 1x (fold 1, epoch 8)"

    out, summary, logs = _guarded(tmp_path, "warn", on_collapse="warn")
    assert summary["training_health"] == "collapsed (warned, epoch 8)"
    assert any(line.startswith("WARNING model unet, fold 2: training collapsed") for line in logs)

    with pytest.raises(TrainingCollapsed, match=r"model unet, fold 2: training collapsed: .*epochs 6-8") as err:
        _guarded(tmp_path, "error", on_collapse="error")
    assert (err.value.fold, err.value.epoch) == (2, 8)
    assert not (tmp_path / "error" / "model.pt").exists()

    with pytest.raises(TrainingCollapsed, match="after 0 recoveries"):
        _guarded(tmp_path, "exhausted", on_collapse="recover", max_recoveries=0)
    assert not (tmp_path / "exhausted" / "model.pt").exists()


def test_recovery_reloads_the_best_training_loss_weights(spike, tmp_path):
    spike.epochs = SPIKED
    weights = {}
    original = loop._run_epoch

    def record(run, model, optimizer, scaler, setup, data, epoch):
        weights[epoch] = {k: v.clone() for k, v in model.state_dict().items()}  # before the epoch
        return original(run, model, optimizer, scaler, setup, data, epoch)

    import plexus.training.loop as module
    module._run_epoch, saved = record, module._run_epoch
    try:
        _guarded(tmp_path, "recover", on_collapse="recover")
    finally:
        module._run_epoch = saved
    # epoch 9 starts from the weights after epoch 5, i.e. those epoch 6 started from
    for key in weights[6]:
        assert torch.equal(weights[9][key], weights[6][key]), key


def test_guard_leaves_a_healthy_run_bit_for_bit(tmp_path):
    images, masks = synthetic(48, seed=3)
    for mode in ("none", "recover", "warn", "error"):
        train_model(images, masks, np.arange(36), np.arange(36, 48), settings(epochs=4, on_collapse=mode),
                    tmp_path / mode, checkpoint_path=tmp_path / f"{mode}.pt", **QUIET)
    for mode in ("recover", "warn", "error"):
        assert_same_result(tmp_path / "none", tmp_path / mode)
        assert json.loads((tmp_path / mode / "train_info.json").read_text())["training_health"] == "ok"


@pytest.mark.parametrize("stop", [7, 8])  # inside the bad streak; after the recovery
def test_resume_with_the_guard_is_exact(spike, tmp_path, stop):
    spike.epochs = SPIKED
    images, masks = synthetic(48, seed=2)
    args = (images, masks, np.arange(36), np.arange(36, 48), settings(epochs=9))
    train_model(*args, tmp_path / "ref", checkpoint_path=tmp_path / "ref.pt", **QUIET)
    ref_info = json.loads((tmp_path / "ref" / "train_info.json").read_text())
    assert ref_info["training_health"] == "recovered 1x (epoch 8)"
    with pytest.raises(Stop):
        train_model(*args, tmp_path / "out", checkpoint_path=tmp_path / "ck.pt", on_epoch_end=stop_after(stop),
                    **QUIET)
    summary = train_model(*args, tmp_path / "out", checkpoint_path=tmp_path / "ck.pt", **QUIET)
    assert summary["resumed_from_epoch"] == stop
    assert_same_result(tmp_path / "ref", tmp_path / "out")
    info = json.loads((tmp_path / "out" / "train_info.json").read_text())
    assert info["collapse_events"] == ref_info["collapse_events"]


# ---------------------------------------------------------------- inner validation


def test_inner_split_is_subject_grouped_and_seeded():
    subjects = np.repeat(np.array([f"s{i}" for i in range(10)]), 5)
    train_idx = np.arange(10, 50)  # subjects s2..s9
    fit, inner = inner_split(train_idx, subjects, 0.25, seed=1)
    assert sorted(np.concatenate([fit, inner]).tolist()) == train_idx.tolist()
    assert not set(subjects[fit]) & set(subjects[inner])
    assert len(set(subjects[inner])) == 2  # round(0.25 * 8)
    again = inner_split(train_idx, subjects, 0.25, seed=1)
    assert np.array_equal(again[1], inner)
    # one subject (a small training-size subset): some of its images, by the same rule
    fit, inner = inner_split(np.arange(5), subjects, 0.4, seed=1)
    assert len(inner) == 2 and sorted(np.concatenate([fit, inner]).tolist()) == list(range(5))
    with pytest.raises(ValueError, match="at least 2 training images"):
        inner_split(np.arange(1), subjects, 0.25, seed=1)


def test_inner_validation_never_reads_an_oof_label(tmp_path):
    """Poisoned OOF labels leave the weights identical (plateau scheduler and early stopping included)."""
    images, masks = synthetic(60, seed=4)
    subjects = np.repeat(np.arange(12), 5)
    train_idx, oof = np.arange(40), np.arange(40, 60)
    poisoned = masks.copy()
    poisoned[oof] = np.random.default_rng(0).integers(0, 2, poisoned[oof].shape, dtype=np.uint8)
    s = settings(epochs=5, validation="inner", scheduler="plateau", plateau_patience=0, patience=2)
    for name, m in (("clean", masks), ("poisoned", poisoned)):
        train_model(images, m, train_idx, oof, s, tmp_path / name, checkpoint_path=tmp_path / f"{name}.pt",
                    subjects=subjects, **QUIET)
    assert_same_result(tmp_path / "clean", tmp_path / "poisoned")
    info = json.loads((tmp_path / "clean" / "train_info.json").read_text())
    assert info["validation"] == "inner" and info["n_oof"] == 20 and info["n_train"] + info["n_val"] == 40
    # validation oof does read them: the same poison changes the history
    s = settings(epochs=2, validation="oof")
    for name, m in (("oof_clean", masks), ("oof_poisoned", poisoned)):
        train_model(images, m, train_idx, oof, s, tmp_path / name, checkpoint_path=tmp_path / f"{name}.pt",
                    subjects=subjects, **QUIET)
    with pytest.raises(AssertionError):
        assert_same_result(tmp_path / "oof_clean", tmp_path / "oof_poisoned")


def test_early_stopping_keeps_the_best_inner_epoch(tmp_path, monkeypatch):
    images, masks = synthetic(48, seed=6)
    losses = iter([0.9, 0.5, 0.7, 0.8, 0.6, 0.4, 0.3])  # best at epoch 2, then 2 worse epochs: stop after 4
    original = loop._evaluate
    monkeypatch.setattr(loop, "_evaluate", lambda *a, **k: (next(losses), original(*a, **k)[1]))
    weights = {}
    monkeypatch.setattr(loop.EarlyStopper, "observe", _recording(loop.EarlyStopper.observe, weights))
    summary = train_model(images, masks, np.arange(36), np.arange(36, 48), settings(epochs=7, patience=2),
                          tmp_path / "out", checkpoint_path=tmp_path / "ck.pt", **QUIET)
    info = json.loads((tmp_path / "out" / "train_info.json").read_text())
    assert info["epochs_run"] == 4 and info["weights"] == "best_inner" and info["best_inner_epoch"] == 2
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert saved["weights"] == "best_inner" and saved["best_epoch"] == 2
    for key, value in weights[2].items():
        assert torch.equal(saved["state_dict"][key], value), key
    assert summary["epochs"] == 7
    with pytest.raises(ValueError, match="patience"):
        settings(patience=2, validation="oof")


def _recording(observe, weights):
    def wrapped(self, epoch, val_loss, model):
        weights[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return observe(self, epoch, val_loss, model)

    return wrapped


# ---------------------------------------------------------------- reporting


def test_training_health_cells_and_the_learning_curve_mark():
    ok = {"training_health": "ok", "collapse_events": []}
    rec = {"training_health": "recovered 1x (epoch 18)",
           "collapse_events": [{"epoch": 18, "best_epoch": 16, "action": "recovered"}]}
    warned = {"training_health": "collapsed (warned, epoch 9)",
              "collapse_events": [{"epoch": 9, "best_epoch": 5, "action": "warned"}]}
    assert training_health({"unet": [ok, ok, ok]}) == "ok"
    assert training_health({"unet": [ok, ok, rec]}) == "recovered 1x (fold 2, epoch 18)"
    assert training_health({"unet": [ok, rec], "attn": [warned, ok]}) == \
        "unet: recovered 1x (fold 1, epoch 18); attn: collapsed (warned; fold 0, epoch 9)"
    assert training_health({"old": [{"n_parameters": 3}]}) == "unknown"

    epochs = np.arange(1, 21)
    hist = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.1 / epochs, "val_dice": 0.5,
                         "seconds": 1.0})
    fig = figures.learning_curves({0: hist, 1: hist}, "unet", events={1: rec["collapse_events"]})
    ax_loss = fig.axes[0]
    marks = [line for line in ax_loss.get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 18
    assert marks[0].get_ydata()[0] == pytest.approx(1 / 18)
    assert "collapse caught" in [t.get_text() for t in ax_loss.get_legend().get_texts()]


@pytest.mark.parametrize("n_classes", [None, 2])
def test_the_run_trains_with_the_floored_loss_of_its_settings(n_classes):
    """The loss a run trains with applies log_dice_floor (it was built without it: the plain -log)."""
    from plexus.training.loop import training_loss
    from plexus.training.settings import TrainSettings

    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2] = 1  # 8 foreground pixels
    logits = torch.full((1, 1, 4, 4), -20.0)  # all wrong: the foreground's soft Dice is 1 / (8 + 1)
    if n_classes:
        target = torch.cat([1 - target, target], 1)
        logits = torch.cat([-logits, logits], 1)
    losses = {}
    for floor in (0.0, 0.5):
        settings = TrainSettings.from_config({"arch": "unet", "input_size": [16, 16], "epochs": 1,
                                              "loss": "neg_log_dice", "dice_reduction": "batch",
                                              "log_dice_floor": floor})
        losses[floor] = float(training_loss(settings, n_classes)(logits, target))
    assert losses[0.0] == pytest.approx(np.log(9), rel=1e-3)  # the plain -log of 1/9
    # below the floor the loss is the tangent of -log at 0.5: -log(0.5) + (0.5 - 1/9) / 0.5
    assert losses[0.5] == pytest.approx(np.log(2) + (0.5 - 1 / 9) / 0.5, rel=1e-3)


# ---------------------------------------------------------------- the guard on the share of progress lost (issue 26)


class _Dummy:
    """Stands in for the model, optimizer and scaler: the guard only copies their state."""

    def state_dict(self):
        return {}


def _replay(losses, **overrides) -> list:
    """The collapses the guard finds in a curve of epoch training losses (warn: it goes on)."""
    from plexus.training.guard import CollapseGuard

    guard = CollapseGuard(settings(on_collapse="warn", **overrides))
    found = []
    for epoch, loss in enumerate(losses, start=1):
        collapse = guard.observe(epoch, float(loss), _Dummy(), _Dummy(), _Dummy())
        if collapse is not None:
            found.append(collapse)
    return found


def _old_rule(losses, factor=1.5, epochs=3) -> list[int]:
    """The replaced rule (a loss above factor x the best so far, epochs in a row): the epochs it fired at."""
    best, streak, fired = math.inf, 0, []
    for epoch, loss in enumerate(losses, start=1):
        if loss < best:
            best, streak = loss, 0
        elif loss > factor * best:
            streak += 1
            if streak == epochs:
                fired.append(epoch)
        else:
            streak = 0
    return fired


def sanity_curve() -> np.ndarray:
    """The issue's 6-image, 400-epoch sanity run: best 0.126 at epoch 68, then 0.28, 0.35, 0.25 and
    noise of that size to the end. The issue gives those four numbers; the first epoch's 1.6 and the
    shape between are assumed (a -log Dice run of that size starts near there)."""
    rng = np.random.default_rng(0)
    down = 0.126 + (1.6 - 0.126) * np.exp(-np.arange(68) / 12.0)
    down[-1] = 0.126
    down[:-1] = np.maximum(down[:-1], 0.127)
    after = np.concatenate([[0.28, 0.35, 0.25], rng.uniform(0.15, 0.40, 400 - 71)])
    return np.concatenate([down, after])


def real_collapse_curve() -> np.ndarray:
    """The real collapse that motivated the guard: 1.68 (epoch 1) -> 0.35 (epoch 16) -> 1.16 (epoch 25),
    straight lines between those points (the issue's), then staying there."""
    return np.concatenate([np.linspace(1.68, 0.35, 16), np.linspace(0.35, 1.16, 10)[1:], [1.17, 1.15, 1.16]])


def test_the_sanity_run_is_no_collapse_and_the_real_one_is():
    sane = sanity_curve()
    assert len(sane) == 400 and sane.argmin() == 67 and sane.min() == 0.126
    assert _replay(sane) == []
    assert _old_rule(sane)  # the replaced rule stopped it: 0.28, 0.35, 0.25 are all above 1.5 x 0.126

    real = real_collapse_curve()
    assert (real[0], real[15], real[24]) == pytest.approx((1.68, 0.35, 1.16))
    (collapse,) = _replay(real)[:1]
    # by hand: threshold 0.35 + 0.5 x (1.68 - 0.35) = 1.015; the rising line first passes it at epoch 24
    assert collapse.threshold == pytest.approx(1.015)
    assert (collapse.best_epoch, collapse.epochs) == (16, [24, 25, 26])
    assert all(loss > 1.015 for loss in collapse.losses)
    assert not _replay(real, collapse_share=0.9)  # it lost 61-62% of its progress, less than 90%


def test_a_loss_settling_near_a_hundredth_is_not_stopped_by_its_noise():
    rng = np.random.default_rng(1)
    curve = np.concatenate([0.01 + 0.89 * np.exp(-np.arange(60) / 8.0), rng.uniform(0.004, 0.03, 300)])
    assert _replay(curve) == []
    assert _old_rule(curve)  # 3 epochs in a row above 1.5 x a best near 0.004 come soon


def test_a_slow_start_is_no_collapse_until_the_run_has_progressed():
    flat = [1.0, 0.99, 0.999, 1.0, 1.001, 0.998, 1.0]  # gives back all of a 1% progress, 4 epochs in a row
    assert _replay(flat) == []
    assert len(_replay(flat, collapse_min_progress=0.0)) == 1


def test_the_400_epoch_sanity_run_completes_through_the_training_loop(tmp_path, monkeypatch):
    """The loop with the default guard (recover) replays the sanity curve's 400 epochs: no event."""
    curve = iter(sanity_curve())
    original = loop._run_epoch

    def replayed(run, model, optimizer, scaler, setup, data, epoch):
        row = original(run, model, optimizer, scaler, setup, data, epoch) if epoch == 1 else {
            "epoch": epoch, "val_loss": 0.5, "val_dice": 0.5, "val_on": "oof", "lr": 0.0, "seconds": 0.0}
        return {**row, "train_loss": float(next(curve))}

    monkeypatch.setattr(loop, "_run_epoch", replayed)
    images, masks = synthetic(12, seed=1)
    train_model(images, masks, np.arange(6), np.arange(6, 12), settings(epochs=400), tmp_path / "out",
                checkpoint_path=tmp_path / "ck.pt", **QUIET)
    info = json.loads((tmp_path / "out" / "train_info.json").read_text())
    assert (info["epochs_run"], info["training_health"], info["collapse_events"]) == (400, "ok", [])


# ---------------------------------------------------------------- validation that costs nothing unless used


def _info(out):
    return json.loads((out / "train_info.json").read_text())


def test_by_default_every_image_of_the_training_part_is_trained_on(tmp_path):
    images, masks = synthetic(60, seed=4)
    subjects = np.repeat(np.arange(12), 5)
    logs = []
    train_model(images, masks, np.arange(40), np.arange(40, 60), settings(epochs=2), tmp_path / "out",
                checkpoint_path=tmp_path / "ck.pt", subjects=subjects, **{**QUIET, "log": logs.append})
    info = _info(tmp_path / "out")
    assert (info["n_train"], info["n_train_part"], info["n_val"], info["n_oof"]) == (40, 40, 20, 20)
    assert (info["validation"], info["validation_setting"], info["validation_read_by"]) == ("oof", "auto", [])
    assert (info["weights"], info["refit"]) == ("final", None)
    assert set(pd.read_csv(tmp_path / "out" / "history.csv")["val_on"]) == {"oof"}
    assert any("every image of the training part is trained on" in line for line in logs)


@pytest.mark.parametrize(("overrides", "readers"), [
    ({"patience": 3}, ["early stopping"]),
    ({"scheduler": "plateau"}, ["plateau scheduler"]),
    ({"validation": "inner"}, []),  # asked for: held out although nothing reads it
])
def test_a_decision_on_the_validation_holds_out_the_inner_split_and_says_so(tmp_path, overrides, readers):
    images, masks = synthetic(60, seed=4)
    subjects = np.repeat(np.arange(12), 5)
    train_model(images, masks, np.arange(40), np.arange(40, 60), settings(epochs=2, **overrides), tmp_path / "out",
                checkpoint_path=tmp_path / "ck.pt", subjects=subjects, **QUIET)
    info = _info(tmp_path / "out")
    assert info["n_train"] + info["n_val"] == info["n_train_part"] == 40
    assert info["n_val"] == 5  # round(0.15 x 8) = 1 subject
    assert (info["validation"], info["validation_read_by"]) == ("inner", readers)
    assert set(pd.read_csv(tmp_path / "out" / "history.csv")["val_on"]) == {"inner"}


def test_refit_retrains_on_the_whole_part_replaying_the_chosen_epochs(tmp_path):
    """A plateau scheduler that never lowers the rate chooses all epochs at the constant rate, so the
    refit must equal, bit for bit, a plain run at that rate on the whole training part."""
    images, masks = synthetic(60, seed=4)
    subjects = np.repeat(np.arange(12), 5)
    args = (images, masks, np.arange(40), np.arange(40, 60))
    kw = {"checkpoint_path": tmp_path / "ck.pt", "subjects": subjects, **QUIET}
    train_model(*args, settings(epochs=3, scheduler="plateau", plateau_patience=50, refit=True), tmp_path / "refit",
                **kw)
    train_model(*args, settings(epochs=3, scheduler="none", validation="oof"), tmp_path / "plain", **kw)
    assert_same_result(tmp_path / "plain", tmp_path / "refit")
    info, selection = _info(tmp_path / "refit"), _info(tmp_path / "refit" / "selection")
    assert (info["weights"], info["n_train"], info["validation"]) == ("refit", 40, "oof")
    assert info["refit"]["epochs"] == 3 and info["refit"]["n_inner"] == selection["n_val"] == 5
    assert (selection["n_train"], selection["validation"], selection["weights"]) == (35, "inner", "final")


def test_refit_trains_the_best_inner_epochs_at_their_rates_and_resumes(tmp_path, monkeypatch):
    images, masks = synthetic(48, seed=6)
    subjects = np.repeat(np.arange(12), 4)
    losses = {1: 0.9, 2: 0.5, 3: 0.7, 4: 0.8, 5: 0.6}  # best at epoch 2, then 2 worse epochs: stop after 4
    original = loop._evaluate

    def inner_losses(model, images_t, masks_t, idx, setup):
        loss, dice = original(model, images_t, masks_t, idx, setup)
        return (losses[inner_losses.epoch] if len(idx) < 12 else loss), dice  # the inner split: 1 subject

    def counting(run, *a):
        inner_losses.epoch = a[-1]
        return run_epoch(run, *a)

    run_epoch = loop._run_epoch
    monkeypatch.setattr(loop, "_evaluate", inner_losses)
    monkeypatch.setattr(loop, "_run_epoch", counting)
    s = settings(epochs=7, patience=2, refit=True, warmup_epochs=1)
    args = (images, masks, np.arange(36), np.arange(36, 48), s)
    train_model(*args, tmp_path / "ref", checkpoint_path=tmp_path / "ref.pt", subjects=subjects, **QUIET)
    info, selection = _info(tmp_path / "ref"), _info(tmp_path / "ref" / "selection")
    assert (selection["epochs_run"], selection["best_inner_epoch"]) == (4, 2)
    assert (info["epochs_run"], info["refit"]["epochs"], info["n_train"]) == (2, 2, 36)
    rates = pd.read_csv(tmp_path / "ref" / "selection" / "history.csv")["lr"].tolist()[:2]
    assert pd.read_csv(tmp_path / "ref" / "history.csv")["lr"].tolist() == rates
    assert rates == pytest.approx([s.lr * lr_factor(s, 1), s.lr * lr_factor(s, 2)])
    # killed during the refit: the rerun resumes it and does not run the selection again
    logs = []
    with pytest.raises(Stop):
        train_model(*args, tmp_path / "out", checkpoint_path=tmp_path / "ck.pt", subjects=subjects,
                    on_epoch_end=lambda e, row: (row["val_on"] == "oof") and stop_after(1)(e, row), **QUIET)
    assert (tmp_path / "out" / "selection" / "train_info.json").exists()
    assert not (tmp_path / "out" / "model.pt").exists()
    train_model(*args, tmp_path / "out", checkpoint_path=tmp_path / "ck.pt", subjects=subjects,
                **{**QUIET, "log": logs.append})
    assert any("not run again" in line for line in logs) and any("resuming" in line for line in logs)
    assert_same_result(tmp_path / "ref", tmp_path / "out")


def test_refit_and_validation_settings_are_checked():
    with pytest.raises(ValueError, match="refit.*patience > 0 or scheduler: plateau"):
        settings(refit=True)
    with pytest.raises(ValueError, match="refit"):
        settings(refit=True, scheduler="plateau", validation="oof")
    with pytest.raises(ValueError, match="patience"):
        settings(patience=2, validation="oof")
    with pytest.raises(ValueError, match="collapse_factor was replaced by collapse_share"):
        settings(collapse_factor=1.5)
    assert settings(patience=2).validation_images == "inner" and settings(validation="oof").validation_images == "oof"
