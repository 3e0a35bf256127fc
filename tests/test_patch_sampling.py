"""Lesion-aware patch sampling (``foreground_fraction``), tested by counting."""

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from plexus.config import ConfigError, validate_config
from plexus.labels import IGNORE_LABEL
from plexus.training.augment import foreground, random_crops
from plexus.training.settings import TrainSettings

REPO = Path(__file__).resolve().parents[1]
SIZE = (8, 8)


def _old_random_crops(x, y, size, generator):
    """A copy of random_crops before foreground sampling existed."""
    h, w = size
    big_h, big_w = x.shape[-2:]
    u = torch.rand(x.shape[0], 2, generator=generator)
    top = (u[:, 0] * (big_h - h + 1)).long().clamp_(max=big_h - h)
    left = (u[:, 1] * (big_w - w + 1)).long().clamp_(max=big_w - w)
    xs = torch.stack([x[i, :, t:t + h, s:s + w] for i, (t, s) in enumerate(zip(top.tolist(), left.tolist()))])
    ys = torch.stack([y[i, :, t:t + h, s:s + w] for i, (t, s) in enumerate(zip(top.tolist(), left.tolist()))])
    return xs.contiguous(), ys.contiguous()


def _squares(b=16, hw=(48, 40), side=3, seed=0):
    """Images whose value encodes the pixel position, targets with one ``side``-square of foreground each,
    away from the border so that a crop centred on it is not shifted."""
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    y = torch.zeros(b, 1, h, w)
    for i in range(b):
        r = int(torch.randint(SIZE[0], h - side - SIZE[0] + 1, (1,), generator=g))
        c = int(torch.randint(SIZE[1], w - side - SIZE[1] + 1, (1,), generator=g))
        y[i, 0, r:r + side, c:c + side] = 1
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(b, 1, 1, 1)
    return x, y


def _offsets(xs, big_w):
    """(top, left) of each crop, read off the position-encoding images."""
    corner = xs[:, 0, 0, 0].long()
    return corner // big_w, corner % big_w


def _centred_on_foreground(xs, ys, big_w):
    """Whether each crop's centre pixel is foreground."""
    h, w = xs.shape[-2:]
    return foreground(ys)[:, h // 2, w // 2]


def test_zero_is_the_old_sampling_bit_for_bit():
    x, y = _squares()
    for seed in range(5):
        g_new, g_old = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        new = random_crops(x, y, SIZE, g_new, foreground_fraction=0.0)
        old = _old_random_crops(x, y, SIZE, g_old)
        torch.testing.assert_close(new, old, rtol=0, atol=0)
        assert torch.equal(g_new.get_state(), g_old.get_state())  # the stream moved exactly as much
        default = random_crops(x, y, SIZE, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(default, old, rtol=0, atol=0)


def test_one_puts_foreground_in_every_crop_and_centres_it():
    x, y = _squares(b=32)
    for seed in range(5):
        xs, ys = random_crops(x, y, SIZE, torch.Generator().manual_seed(seed), foreground_fraction=1.0)
        assert (ys.flatten(1).sum(1) > 0).all()
        assert _centred_on_foreground(xs, ys, x.shape[-1]).all()
    # the old sampling misses the small squares in most crops
    _, ys = _old_random_crops(x, y, SIZE, torch.Generator().manual_seed(0))
    assert (ys.flatten(1).sum(1) > 0).sum() < 16


@pytest.mark.parametrize(("fraction", "batch"), [(0.5, 16), (0.5, 7), (1 / 3, 12), (0.25, 4), (0.1, 3)])
def test_the_last_k_are_centred_on_foreground(fraction, batch):
    x, y = _squares(b=batch)
    k = math.floor(fraction * batch + 0.5)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        xs, ys = random_crops(x, y, SIZE, g, foreground_fraction=fraction)
        centred = _centred_on_foreground(xs, ys, x.shape[-1])
        assert centred[batch - k:].all()
        # the first batch - k are the old random crops, the same draws
        old_x, _ = _old_random_crops(x, y, SIZE, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(xs[:batch - k], old_x[:batch - k], rtol=0, atol=0)


def test_the_centre_is_uniform_over_the_foreground():
    h, w = 32, 32
    y = torch.zeros(1, 1, h, w)
    y[0, 0, 10:12, 20:22] = 1  # four foreground pixels, each should be the centre about 1/4 of the time
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    g = torch.Generator().manual_seed(0)
    counts = {}
    for _ in range(800):
        xs, _ = random_crops(x, y, SIZE, g, foreground_fraction=1.0)
        centre = int(xs[0, 0, SIZE[0] // 2, SIZE[1] // 2])
        counts[divmod(centre, w)] = counts.get(divmod(centre, w), 0) + 1
    assert set(counts) == {(10, 20), (10, 21), (11, 20), (11, 21)}
    assert all(150 < n < 250 for n in counts.values()), counts


def test_an_image_without_foreground_falls_back_to_its_random_crop():
    x, y = _squares(b=6)
    y[2:4] = 0
    g = torch.Generator().manual_seed(3)
    xs, ys = random_crops(x, y, SIZE, g, foreground_fraction=1.0)
    old_x, _ = _old_random_crops(x, y, SIZE, torch.Generator().manual_seed(3))
    torch.testing.assert_close(xs[2:4], old_x[2:4], rtol=0, atol=0)
    assert _centred_on_foreground(xs, ys, x.shape[-1])[[0, 1, 4, 5]].all()
    assert (ys[2:4] == 0).all()


def test_the_crop_never_leaves_the_image():
    h, w = 30, 26
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(4, 1, 1, 1)
    y = torch.zeros(4, 1, h, w)
    corners = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]  # foreground only in the corners
    for i, (r, c) in enumerate(corners):
        y[i, 0, r, c] = 1
    for seed in range(5):
        xs, ys = random_crops(x, y, (16, 10), torch.Generator().manual_seed(seed), foreground_fraction=1.0)
        assert xs.shape == (4, 1, 16, 10) and ys.shape == (4, 1, 16, 10)
        top, left = _offsets(xs, w)
        assert (top >= 0).all() and (top <= h - 16).all() and (left >= 0).all() and (left <= w - 10).all()
        for i in range(4):  # a contiguous window, target and image cut at the same place, foreground inside
            t, s = int(top[i]), int(left[i])
            torch.testing.assert_close(xs[i], x[i, :, t:t + 16, s:s + 10], rtol=0, atol=0)
            torch.testing.assert_close(ys[i], y[i, :, t:t + 16, s:s + 10], rtol=0, atol=0)
            assert ys[i].sum() == 1
        assert (top.tolist(), left.tolist()) == ([0, 0, h - 16, h - 16], [0, w - 10, 0, w - 10])
    with pytest.raises(ValueError, match="larger than the images"):
        random_crops(x, y, (32, 10), torch.Generator(), foreground_fraction=1.0)


def test_class_index_masks_never_centre_on_an_ignored_pixel():
    h, w = 24, 24
    b = 8
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(b, 1, 1, 1)
    y = torch.zeros(b, 1, h, w, dtype=torch.uint8)
    y[:, 0, :, :12] = IGNORE_LABEL  # half the image ignored
    y[:, 0, 5, 17] = 2
    y[:, 0, 18, 14] = 1
    for seed in range(20):
        xs, ys = random_crops(x, y, SIZE, torch.Generator().manual_seed(seed), foreground_fraction=1.0)
        centre = ys[:, 0, SIZE[0] // 2, SIZE[1] // 2]
        assert ((centre == 1) | (centre == 2)).all()
    # (B, H, W) class-index maps work the same
    xs, ys = random_crops(x, y[:, 0], SIZE, torch.Generator().manual_seed(0), foreground_fraction=1.0)
    assert ys.shape == (b, *SIZE) and torch.isin(ys[:, SIZE[0] // 2, SIZE[1] // 2], torch.tensor([1, 2])).all()
    # only ignored pixels: no foreground, a random crop
    only_ignored = torch.full((1, 1, h, w), IGNORE_LABEL, dtype=torch.uint8)
    assert not foreground(only_ignored).any()


def test_one_hot_targets_as_the_training_loop_builds_them():
    """(B, K, H, W) one-hot, an ignored pixel all zero: class 0 and ignored pixels are not foreground."""
    h, w = 24, 24
    labels = torch.zeros(4, h, w, dtype=torch.long)
    labels[:, 3, 4] = 2
    labelled = torch.ones(4, h, w, dtype=torch.bool)
    labelled[:, 10:, :] = False
    y = (torch.nn.functional.one_hot(labels, 3) * labelled[..., None]).permute(0, 3, 1, 2).float()
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(4, 1, 1, 1)
    assert foreground(y).sum() == 4
    xs, ys = random_crops(x, y, SIZE, torch.Generator().manual_seed(1), foreground_fraction=1.0)
    top, left = _offsets(xs, w)
    assert (ys[:, 2, 3, 4] == 1).all()
    assert top.tolist() == [0] * 4 and left.tolist() == [0] * 4  # (3, 4) centred, clipped at the corner


def test_every_batch_of_a_size_draws_the_same_count():
    x, y = _squares(b=8)
    y[:4] = 0
    g_a, g_b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    random_crops(x, y, SIZE, g_a, foreground_fraction=0.5)
    random_crops(x, torch.zeros_like(y), SIZE, g_b, foreground_fraction=0.5)
    assert torch.equal(g_a.get_state(), g_b.get_state())


def test_fraction_out_of_range_is_refused():
    x, y = _squares(b=2)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="foreground_fraction"):
            random_crops(x, y, SIZE, torch.Generator(), foreground_fraction=bad)


REQUIRED = {"arch": "unet", "input_size": [64, 64], "epochs": 2, "patch_size": [32, 32]}


def test_setting_default_and_bounds():
    assert TrainSettings.from_config(REQUIRED).foreground_fraction == 0.0
    assert TrainSettings.from_config({**REQUIRED, "foreground_fraction": 1}).foreground_fraction == 1.0
    assert TrainSettings.from_config({**REQUIRED, "foreground_fraction": 0.33}).to_dict()["foreground_fraction"] == 0.33
    for bad in (-0.1, 1.01, "a third"):
        with pytest.raises(ValueError, match=r"model setting foreground_fraction\b"):
            TrainSettings.from_config({**REQUIRED, "foreground_fraction": bad})
    with pytest.raises(ValueError, match=r"model setting foreground_fraction\b.*patch_size"):
        TrainSettings.from_config({**REQUIRED, "patch_size": None, "foreground_fraction": 0.5})


def test_config_names_the_model_key():
    config = copy.deepcopy(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    name = next(iter(config["models"]))
    config["models"][name]["foreground_fraction"] = 1.5
    with pytest.raises(ConfigError, match=rf"config key models[.]{name}[.]foreground_fraction:"):
        validate_config(config)


@pytest.mark.parametrize("n_classes", [None, 2])
def test_training_crops_with_the_setting(tmp_path, monkeypatch, n_classes):
    import numpy as np

    from plexus.training import loop

    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, size=(8, 32, 32)).astype(np.uint8)
    masks = np.zeros((8, 32, 32), np.uint8)
    for n in range(8):
        r, c = rng.integers(4, 26, size=2)
        masks[n, r:r + 2, c:c + 2] = 1
    seen = []

    def spy(x, y, size, generator, foreground_fraction=0.0):
        xs, ys = random_crops(x, y, size, generator, foreground_fraction)
        seen.append((foreground_fraction, len(ys), int(foreground(ys).flatten(1).any(1).sum())))
        return xs, ys

    monkeypatch.setattr(loop, "random_crops", spy)
    settings = TrainSettings.from_config({
        "arch": "unet", "input_size": [32, 32], "patch_size": [16, 16], "foreground_fraction": 0.5,
        "epochs": 1, "batch_size": 4, "base_channels": 4, "depth": 2, "amp": False})
    summary = loop.train_model(images, masks, np.arange(6), np.arange(6, 8), settings, tmp_path,
                               checkpoint_path=tmp_path / "c.pt", n_classes=n_classes, log=lambda m: None)
    assert np.isfinite(summary["train_loss"])
    assert seen and all(f == 0.5 and with_fg >= b // 2 for f, b, with_fg in seen)
