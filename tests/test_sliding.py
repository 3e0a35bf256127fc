"""Patches: random training crops and sliding-window prediction with Gaussian blending."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plexus.inference.predict import load_model, predict_probs
from plexus.inference.sliding import gaussian_weights, sliding_window, window_starts
from plexus.training.augment import random_crops
from plexus.training.loop import train_model
from plexus.training.settings import TrainSettings


@pytest.mark.parametrize("length,window,overlap", [(64, 16, 0.5), (70, 16, 0.5), (16, 16, 0.5), (10, 16, 0.0),
                                                   (100, 32, 0.25), (33, 8, 0.0)])
def test_windows_cover_the_image_with_at_least_the_overlap(length, window, overlap):
    starts = window_starts(length, window, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + window] = True
    assert covered.all() and starts[0] == 0
    if length > window:
        assert starts[-1] == length - window
        steps = np.diff(starts)
        assert (steps > 0).all() and (steps <= window * (1 - overlap)).all()


def test_gaussian_weights_peak_in_the_centre():
    w = gaussian_weights((16, 12))
    assert w.shape == (16, 12) and 0.85 < float(w.max()) <= 1.0  # even sides: no pixel at the exact centre
    assert float(gaussian_weights((15, 11)).max()) == pytest.approx(1.0)
    assert w[8, 6] > w[0, 0] and w[0, 0] >= 1e-3
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))


def test_sliding_window_of_a_pixelwise_map_is_that_map():
    x = torch.rand(2, 3, 40, 56)
    out = sliding_window(lambda w: torch.softmax(w * 3, dim=1), x, (16, 16), 0.5)
    torch.testing.assert_close(out, torch.softmax(x * 3, dim=1))


def test_random_crops_cut_image_and_target_at_the_same_place():
    x = torch.arange(2 * 1 * 10 * 12, dtype=torch.float32).reshape(2, 1, 10, 12)
    y = torch.cat([x, -x], dim=1)
    cx, cy = random_crops(x, y, (4, 6), torch.Generator().manual_seed(0))
    assert cx.shape == (2, 1, 4, 6) and cy.shape == (2, 2, 4, 6)
    torch.testing.assert_close(cy[:, :1], cx)
    for i in range(2):  # a contiguous window of the original
        top, left = divmod(int(cx[i, 0, 0, 0]) - i * 120, 12)
        torch.testing.assert_close(cx[i, 0], x[i, 0, top:top + 4, left:left + 6])
    with pytest.raises(ValueError, match="larger than the images"):
        random_crops(x, y, (12, 6), torch.Generator())


def test_a_model_trained_on_patches_predicts_by_blended_windows(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, size=(12, 2, 32, 32)).astype(np.uint8)
    masks = np.zeros((12, 32, 32), np.uint8)
    for n in range(12):
        y, x = rng.integers(0, 24, size=2)
        masks[n, y:y + 8, x:x + 8] = 1
        images[n, 0, y:y + 8, x:x + 8] = 220
    settings = TrainSettings.from_config({
        "arch": "unet", "input_size": [32, 32], "patch_size": [16, 16], "patches_per_image": 3, "window_overlap": 0.5,
        "epochs": 2, "batch_size": 6, "base_channels": 4, "depth": 2, "loss": "ce_dice", "amp": False})
    summary = train_model(images, masks, np.arange(8), np.arange(8, 12), settings, tmp_path,
                          checkpoint_path=tmp_path / "c.pt", n_classes=2, log=lambda m: None)
    assert np.isfinite(summary["train_loss"])
    prob = predict_probs(tmp_path / "model.pt", images, device="cpu")["prob"].astype(np.float32)

    # reference: every 16x16 window by hand, blended with the same Gaussian
    model, meta = load_model(tmp_path / "model.pt", "cpu")
    mean = torch.tensor(meta["mean"])[None, :, None, None]
    std = torch.tensor(meta["std"])[None, :, None, None]
    x = (torch.from_numpy(images).float() - mean) / std
    weights = gaussian_weights((16, 16))
    total, norm = torch.zeros(12, 2, 32, 32), torch.zeros(32, 32)
    with torch.no_grad():
        for top in (0, 8, 16):
            for left in (0, 8, 16):
                out = torch.softmax(model(x[:, :, top:top + 16, left:left + 16]), dim=1)
                total[:, :, top:top + 16, left:left + 16] += out * weights
                norm[top:top + 16, left:left + 16] += weights
    np.testing.assert_allclose(prob, (total / norm).numpy(), atol=2e-3)


def test_patch_size_must_fit_the_network():
    base = {"arch": "unet", "input_size": [32, 32], "epochs": 1, "depth": 2}
    with pytest.raises(ValueError, match="patch_size"):
        TrainSettings.from_config({**base, "patch_size": [18, 16]})
    with pytest.raises(ValueError, match="patch_size"):
        TrainSettings.from_config({**base, "patch_size": [64, 16]})
    with pytest.raises(ValueError, match="presence head"):
        TrainSettings.from_config({**base, "patch_size": [16, 16], "presence_head": True})
