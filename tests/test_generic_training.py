"""Training and prediction on any dataset: several classes, several channels, missing channels,
16-bit images, and the X-ray study's recipe (RMSprop, plateau scheduler, gradient clipping, CE + Dice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from plexus.data.noise import add_gaussian_noise
from plexus.inference.predict import predict_probs
from plexus.models import build_model
from plexus.training.augment import augment_batch
from plexus.training.loop import _drop_channels, epoch_seed, train_model
from plexus.training.losses import LOSSES, MULTICLASS_LOSSES, multiclass_soft_dice
from plexus.training.optim import make_scheduler
from plexus.training.settings import TrainSettings

N, C, H, W = 24, 3, 16, 16


def _dataset(dtype=np.uint8, seed=0):
    """Three channels; class 1 a bright square in channel 0, class 2 a bright square in channel 2."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 60000
    images = rng.integers(0, top // 4, size=(N, C, H, W)).astype(dtype)
    masks = np.zeros((N, H, W), np.uint8)
    for n in range(N):
        y, x = rng.integers(0, 8, size=2)
        masks[n, y:y + 6, x:x + 6] = 1
        images[n, 0, y:y + 6, x:x + 6] = top * 3 // 4
        if n % 2:
            masks[n, 8:16, 8:16] = 2
            images[n, 2, 8:16, 8:16] = top * 3 // 4
    present = np.ones((N, C), bool)
    present[::5, 1] = False
    images[~present] = 0
    return images, masks, present


def _settings(**extra):
    entry = {"arch": "unet", "input_size": [H, W], "epochs": 2, "batch_size": 8, "base_channels": 4, "depth": 2,
             "loss": "ce_dice", "augment": {"hflip": 0.5, "shift": 0.05}, "amp": False}
    entry.update(extra)
    return TrainSettings.from_config(entry)


def test_multiclass_multichannel_training_and_prediction(tmp_path):
    images, masks, present = _dataset(np.uint16)
    settings = _settings(optimizer="rmsprop", scheduler="plateau", plateau_patience=0, grad_clip=1.0,
                         channel_dropout=0.2)
    summary = train_model(images, masks, np.arange(16), np.arange(16, N), settings, tmp_path,
                          checkpoint_path=tmp_path / "ck.pt", n_classes=3, present=present, log=lambda m: None)
    assert np.isfinite(summary["train_loss"]) and np.isfinite(summary["val_loss"])
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["n_classes"] == 3 and saved["model_kwargs"]["in_channels"] == 3
    assert saved["model_kwargs"]["out_channels"] == 3
    # per-channel statistics of the training part, missing channels left out
    train = images[:16].astype(np.float64)
    expected_mean = [train[present[:16, c], c].mean() for c in range(C)]
    np.testing.assert_allclose(saved["mean"], expected_mean, rtol=1e-6)

    out = predict_probs(tmp_path / "model.pt", images, present=present, device="cpu")
    assert out["prob"].shape == (N, 3, H, W) and out["prob"].dtype == np.float16
    np.testing.assert_allclose(out["prob"].astype(np.float32).sum(1), 1.0, atol=3e-3)
    # dropping a channel is the same as marking it missing in every image
    dropped = predict_probs(tmp_path / "model.pt", images, present=present, drop_channel=2, device="cpu")
    marked = present.copy()
    marked[:, 2] = False
    as_missing = predict_probs(tmp_path / "model.pt", images, present=marked, device="cpu")
    np.testing.assert_array_equal(dropped["prob"], as_missing["prob"])
    assert not np.array_equal(dropped["prob"], out["prob"])
    # the pixel values of a missing channel do not matter
    scribbled = images.copy()
    scribbled[:, 2] = 999
    np.testing.assert_array_equal(
        predict_probs(tmp_path / "model.pt", scribbled, present=marked, device="cpu")["prob"], as_missing["prob"])


def test_multiclass_training_learns_the_classes(tmp_path):
    images, masks, present = _dataset()
    settings = _settings(epochs=30, lr=0.01, augment={}, batch_size=8, base_channels=8, dropout=0.0)
    train_model(images, masks, np.arange(N), np.arange(16, N), settings, tmp_path, checkpoint_path=tmp_path / "c.pt",
                n_classes=3, present=present, log=lambda m: None)
    prob = predict_probs(tmp_path / "model.pt", images, present=present, device="cpu")["prob"]
    pred = prob.astype(np.float32).argmax(1)
    for c in (1, 2):
        inter = ((pred == c) & (masks == c)).sum()
        dice = 2 * inter / ((pred == c).sum() + (masks == c).sum())
        assert dice > 0.8, (c, dice)  # an all-background prediction scores 0


def test_gradient_clipping_bounds_the_first_sgd_step(tmp_path):
    images, masks, present = _dataset()
    clip, lr = 1e-3, 1.0
    settings = _settings(epochs=1, batch_size=N, optimizer="sgd", momentum=0.0, lr=lr, grad_clip=clip, augment={},
                         dropout=0.0)
    train_model(images, masks, np.arange(N), np.arange(4), settings, tmp_path, checkpoint_path=tmp_path / "c.pt",
                n_classes=3, present=present, log=lambda m: None)
    torch.manual_seed(epoch_seed(settings.seed, 0))  # the initial weights, as training draws them
    initial = build_model("unet", **settings.model_kwargs(C, 3)).state_dict()
    final = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    step = torch.sqrt(sum(((final[k].float() - initial[k].float()) ** 2).sum()
                          for k in initial if initial[k].is_floating_point() and "running" not in k))
    assert 0 < step <= lr * clip * 1.0001


def test_plateau_scheduler_follows_the_validation_loss(tmp_path):
    images, masks, present = _dataset()
    settings = _settings(epochs=3, scheduler="plateau", plateau_patience=0, plateau_factor=0.5, lr=1e-3)
    seen = []
    train_model(images, masks, np.arange(16), np.arange(16, N), settings, tmp_path, checkpoint_path=tmp_path / "c.pt",
                n_classes=3, present=present, log=lambda m: None,
                on_epoch_end=lambda e, row: seen.append((row, torch.load(tmp_path / "c.pt", weights_only=True))))
    for epoch, (_, ck) in enumerate(seen, start=1):
        history = pd.DataFrame(ck["history"])
        assert ck["scheduler"]["best"] == pytest.approx(history["val_loss"].min())  # stepped on val_loss
        assert ck["scheduler"]["last_epoch"] == epoch


def test_plateau_scheduler_halves_the_rate_without_improvement():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
    scheduler = make_scheduler(optimizer, _settings(scheduler="plateau", plateau_patience=2, plateau_factor=0.5,
                                                    optimizer="rmsprop"))
    rates = []
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        scheduler.step(loss)
        rates.append(optimizer.param_groups[0]["lr"])
    # patience 2: the third epoch without improvement (epoch 5) halves the rate, and again 3 epochs later
    assert rates == [0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005]
    assert make_scheduler(optimizer, _settings()) is None


def test_multiclass_soft_dice_by_hand():
    target = F.one_hot(torch.tensor([[[0, 1], [2, 2]]]), 3).permute(0, 3, 1, 2).float()
    assert float(multiclass_soft_dice(target, target, smooth=0.0)) == pytest.approx(1.0)
    probs = torch.zeros_like(target)
    probs[:, 0] = 1.0  # all background: every foreground class scores smooth / (t + smooth)
    expected = np.mean([1 / (1 + 1), 1 / (2 + 1)])
    assert float(multiclass_soft_dice(probs, target, smooth=1.0)) == pytest.approx(expected)
    logits = torch.randn(2, 3, 4, 4)
    target = F.one_hot(torch.randint(0, 3, (2, 4, 4)), 3).permute(0, 3, 1, 2).float()
    ce = F.cross_entropy(logits, target.argmax(1))
    dice = multiclass_soft_dice(torch.softmax(logits, 1), target)
    assert float(MULTICLASS_LOSSES["ce_dice"](logits, target)) == pytest.approx(float(ce + 1 - dice), rel=1e-6)


def test_augment_keeps_one_hot_masks_one_hot_and_aligned():
    images, masks, _ = _dataset()
    x = torch.from_numpy(images[:8]).float()
    y = F.one_hot(torch.from_numpy(masks[:8]).long(), 3).permute(0, 3, 1, 2).float()
    gen = torch.Generator().manual_seed(0)
    ax, ay = augment_batch(x, y, {"hflip": 1.0}, gen)
    assert torch.equal(ay, y.flip(-1)) and torch.equal(ax, x.flip(-1))
    ax, ay = augment_batch(x, y, {"rotate": 20, "shift": 0.1, "zoom": 0.1}, torch.Generator().manual_seed(1))
    assert torch.equal(ay.sum(1), torch.ones_like(ay[:, 0]))  # exactly one class per pixel


def test_channel_dropout_never_removes_every_channel():
    x = torch.ones(500, 3, 2, 2)
    out = _drop_channels(x, 0.9, torch.Generator().manual_seed(0))
    kept = out[:, :, 0, 0]
    assert (kept.sum(1) >= 1).all()
    assert 0.05 < float((kept == 0).float().mean()) < 0.9


def test_noise_is_in_native_units_and_clipped_to_16_bits():
    images = np.full((2, 3, 64, 64), 30000, np.uint16)
    noisy = add_gaussian_noise(images, 5000.0, [1, 2])
    assert noisy.dtype == np.uint16
    assert abs(float(noisy.astype(np.float64).std()) - 5000) < 150
    bright = add_gaussian_noise(np.full((1, 8, 8), 65530, np.uint16), 100.0, [3])
    assert bright.max() == 65535


@pytest.mark.parametrize("loss", ["ce_dice", "dice", "neg_log_dice", "ce"])
def test_training_with_classes_uses_the_softmax_loss(tmp_path, loss):
    """One batch, a vanishing learning rate: the epoch's loss is the multi-class loss of the initial model."""
    images, masks, present = _dataset()
    # validation oof: the epoch is one batch of all N images (an inner split would hold some out)
    settings = _settings(epochs=1, batch_size=N, lr=1e-12, augment={}, dropout=0.0, loss=loss, channels_last=False,
                         validation="oof")
    summary = train_model(images, masks, np.arange(N), np.arange(4), settings, tmp_path,
                          checkpoint_path=tmp_path / "c.pt", n_classes=3, present=present, log=lambda m: None)
    torch.manual_seed(epoch_seed(settings.seed, 0))
    model = build_model("unet", **settings.model_kwargs(C, 3)).train()
    x = torch.from_numpy(images).float()
    mean = torch.tensor([images[present[:, c], c].mean() for c in range(C)])[None, :, None, None]
    std = torch.tensor([images[present[:, c], c].astype(np.float64).std() for c in range(C)])[None, :, None, None]
    x = ((x - mean) / std * torch.from_numpy(present)[:, :, None, None]).float()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(epoch_seed(settings.seed, 1)))
    y = F.one_hot(torch.from_numpy(masks).long(), 3).permute(0, 3, 1, 2).float()
    torch.manual_seed(epoch_seed(settings.seed, 1))
    with torch.no_grad():
        logits = model(x[perm])
    expected, binary = MULTICLASS_LOSSES[loss](logits, y[perm]), LOSSES[loss](logits, y[perm])
    # equal up to the kernels' float32 rounding (channels_last, threads), and far from the sigmoid loss
    assert summary["train_loss"] == pytest.approx(float(expected), rel=0.02)
    assert abs(summary["train_loss"] - float(binary)) > 0.1 * abs(float(binary))
