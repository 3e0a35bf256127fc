"""Region-based training (``region_training: regions``, nnU-Net's): one sigmoid per region of
nested or overlapping label sets, multi-hot targets, per-region binary losses and Dice, the
metadata in model.pt and per-region probabilities from predict_probs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from plexus.inference.predict import predict_probs
from plexus.labels import IGNORE_LABEL
from plexus.stages.train import train_stage
from plexus.training.loop import _batch, _region_dice, _Setup, train_model
from plexus.training.losses import region_loss, region_targets, regions_from_onehot
from plexus.training.settings import TrainSettings

# labels 0 background, 1 necrosis, 2 edema, 3 non_enhancing, 4 enhancing
REGIONS = np.array([[0, 1, 1, 1, 1],   # complete
                    [0, 1, 0, 1, 1],   # core
                    [0, 0, 0, 0, 1]],  # enhancing
                   dtype=bool)
NAMES = np.array(["complete", "core", "enhancing"])
TINY = np.array([[0, 2, 2],
                 [2, 1, 4],
                 [2, 4, IGNORE_LABEL]], dtype=np.uint8)
# by hand: complete = every label 1-4, core = 1, 3, 4, enhancing = 4; the ignored pixel in none
TINY_COMPLETE = [[0, 1, 1], [1, 1, 1], [1, 1, 0]]
TINY_CORE = [[0, 0, 0], [0, 1, 1], [0, 1, 0]]
TINY_ENHANCING = [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
TINY_LABELLED = [[1, 1, 1], [1, 1, 1], [1, 1, 0]]

N, H, W = 24, 16, 16
BIG = 1e4  # a logit whose sigmoid is exactly 0 or 1 in float32


def _onehot(masks: np.ndarray, k: int = 5) -> torch.Tensor:
    """The loop's own one-hot target (ignored pixels all zero)."""
    m = torch.from_numpy(masks)
    setup = _Setup(device=torch.device("cpu"), mean=0.0, std=1.0, batch_size=len(masks), seg_loss=None,
                   presence_weight=0.0, two_head=False, augment=None, n_classes=k)
    images = torch.zeros(masks.shape, dtype=torch.uint8)
    return _batch(images, m, torch.arange(len(masks)), setup)[1]


def _perfect_logits(target: torch.Tensor) -> torch.Tensor:
    return torch.where(target > 0.5, BIG, -BIG)


# ---------------------------------------------------------------- targets


def test_multi_hot_target_of_nested_regions_and_an_ignored_pixel():
    target, labelled = region_targets(torch.from_numpy(TINY[None]), REGIONS)
    assert target.shape == (1, 3, 3, 3) and labelled.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(target[0].numpy(), [TINY_COMPLETE, TINY_CORE, TINY_ENHANCING])
    np.testing.assert_array_equal(labelled[0, 0].numpy(), TINY_LABELLED)
    # the loop's path (one-hot through crops and augmentation, then the regions matrix) agrees
    t2, l2 = regions_from_onehot(_onehot(TINY[None]), torch.from_numpy(REGIONS).float())
    np.testing.assert_array_equal(t2.numpy(), target.numpy())
    np.testing.assert_array_equal(l2.numpy(), labelled.numpy())


# ---------------------------------------------------------------- losses


def test_region_dice_loss_by_hand_perfect_and_empty_with_the_ignored_pixel_excluded():
    onehot = _onehot(TINY[None])
    target, _ = region_targets(torch.from_numpy(TINY[None]), REGIONS)
    perfect = _perfect_logits(target)
    perfect[:, :, 2, 2] = BIG  # predicted in every region at the ignored pixel: must not count
    dice = region_loss("dice", "batch", REGIONS)
    assert dice(perfect, onehot).item() == pytest.approx(0.0, abs=1e-7)
    # an empty prediction: smooth Dice 1 / (n_r + 1) per region, n = 7, 3, 2 pixels
    empty = torch.full_like(target, -BIG)
    mean_dice = (1 / 8 + 1 / 4 + 1 / 3) / 3  # 17/72
    assert dice(empty, onehot).item() == pytest.approx(1 - mean_dice, rel=1e-6)
    assert region_loss("neg_log_dice", "batch", REGIONS, 0.0)(empty, onehot).item() == pytest.approx(
        -math.log(mean_dice), rel=1e-6)
    # the floor: below it the tangent of -log
    floor = 0.5
    assert region_loss("neg_log_dice", "batch", REGIONS, floor)(empty, onehot).item() == pytest.approx(
        -math.log(floor) + (floor - mean_dice) / floor, rel=1e-6)
    # ignored pixel counted, the perfect prediction would lose: (2*n + 1)/(2*n + 2) < 1 in every region
    assert region_loss("ce_dice", "batch", REGIONS)(perfect, onehot).item() == pytest.approx(0.0, abs=1e-6)


def test_region_dice_reduction_image_averages_over_image_and_region():
    masks = np.stack([TINY, np.zeros_like(TINY)])  # the second image has no region at all
    onehot = _onehot(masks)
    empty = torch.full((2, 3, 3, 3), -BIG)
    # image 1: 1/8, 1/4, 1/3; image 2: empty truth and prediction, Dice 1 in each region
    expected = 1 - (1 / 8 + 1 / 4 + 1 / 3 + 3) / 6
    assert region_loss("dice", "image", REGIONS)(empty, onehot).item() == pytest.approx(expected, rel=1e-6)
    # batch: per region over both images (image 2 adds nothing)
    assert region_loss("dice", "batch", REGIONS)(empty, onehot).item() == pytest.approx(
        1 - (1 / 8 + 1 / 4 + 1 / 3) / 3, rel=1e-6)


def test_region_bce_leaves_the_ignored_pixel_out():
    onehot = _onehot(TINY[None])
    logits = torch.zeros(1, 3, 3, 3)
    logits[:, :, 2, 2] = 100.0  # target 0 there: a BCE of 100 per region if it counted
    assert region_loss("ce", "batch", REGIONS)(logits, onehot).item() == pytest.approx(math.log(2), rel=1e-6)
    # one confident wrong pixel in one region: BCE of softplus(20) over 8 pixels x 3 regions
    logits[0, 2, 0, 0] = 20.0  # enhancing predicted on background
    expected = (23 * math.log(2) + math.log1p(math.exp(20.0))) / 24
    assert region_loss("ce", "image", REGIONS)(logits, onehot).item() == pytest.approx(expected, rel=1e-6)
    # nothing labelled: zero, not NaN, and differentiable
    all_ignored = _onehot(np.full((1, 3, 3), IGNORE_LABEL, np.uint8))
    x = torch.zeros(1, 3, 3, 3, requires_grad=True)
    loss = region_loss("ce", "batch", REGIONS)(x, all_ignored)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_validation_region_dice_by_hand():
    masks = np.stack([TINY, np.zeros_like(TINY)])
    onehot = _onehot(masks)
    regions = torch.from_numpy(REGIONS).float()
    target, _ = region_targets(torch.from_numpy(masks), REGIONS)
    empty = torch.full((2, 3, 3, 3), -BIG)
    # image 1 has every region, predicted in none: 0; image 2 none in either: 1
    np.testing.assert_allclose(_region_dice(empty, onehot, regions).numpy(), [0.0, 1.0])
    perfect = _perfect_logits(target)
    perfect[0, :, 2, 2] = BIG  # the ignored pixel: in neither prediction nor truth
    np.testing.assert_allclose(_region_dice(perfect, onehot, regions).numpy(), [1.0, 1.0])
    # complete right, core predicted as complete (Dice 2*3/(7+3)), enhancing empty (0)
    partial = torch.full((1, 3, 3, 3), -BIG)
    partial[0, 0] = perfect[0, 0]
    partial[0, 1] = perfect[0, 0]
    np.testing.assert_allclose(_region_dice(partial, onehot[:1], regions).numpy(), [(1 + 0.6 + 0) / 3], rtol=1e-6)


# ---------------------------------------------------------------- training and prediction


def _dataset(seed=0):
    """Nested tumours: edema ring (2) around a core of necrosis (1) / non-enhancing (3) with an enhancing rim (4).

    Channel 0 shows the complete tumour, channel 1 the core, channel 2 the enhancing part, so each
    region is visible; a few pixels are ignored.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(N, 3, H, W)).astype(np.uint8)
    masks = np.zeros((N, H, W), np.uint8)
    for n in range(N):
        if n % 6 == 5:
            continue  # a few tumour-free images
        y, x = rng.integers(0, 7, size=2)
        masks[n, y:y + 9, x:x + 9] = 2
        masks[n, y + 2:y + 7, x + 2:x + 7] = 4
        masks[n, y + 3:y + 6, x + 3:x + 6] = 1 if n % 2 else 3
        masks[n, 0, :2] = IGNORE_LABEL
    complete, core, enhancing = (np.isin(masks, np.flatnonzero(r)) for r in REGIONS)
    images[:, 0][complete] += 120
    images[:, 1][core] += 120
    images[:, 2][enhancing] += 120
    return images, masks


def _settings(**extra):
    entry = {"arch": "unet", "input_size": [H, W], "epochs": 6, "batch_size": 8, "base_channels": 4, "depth": 2,
             "loss": "ce_dice", "lr": 0.01, "scheduler": "none", "augment": {"hflip": 0.5, "vflip": 0.0,
             "shift": 0.0, "rotate": 0.0, "shear": 0.0, "zoom": 0.0}, "amp": False, "validation": "oof",
             "dropout": 0.0}
    entry.update(extra)
    return TrainSettings.from_config(entry)


def _train(tmp_path, settings, masks_images=None, **kwargs):
    images, masks = masks_images or _dataset()
    rows = []
    summary = train_model(images, masks, np.arange(16), np.arange(16, N), settings, tmp_path,
                          checkpoint_path=tmp_path / "ck.pt", device="cpu", threads=1, log=lambda m: None,
                          on_epoch_end=lambda e, row: rows.append(row), **kwargs)
    return summary, rows


def test_region_training_learns_stores_metadata_and_predicts_region_probabilities(tmp_path):
    images, masks = _dataset()
    settings = _settings(region_training="regions")
    summary, rows = _train(tmp_path, settings, (images, masks), n_classes=5, regions=REGIONS, region_names=NAMES)
    assert all(np.isfinite([r["train_loss"] for r in rows]))
    assert rows[-1]["val_dice"] > rows[0]["val_dice"], [r["val_dice"] for r in rows]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["activation"] == "sigmoid_regions"
    assert saved["regions"] == REGIONS.tolist() and saved["region_names"] == ["complete", "core", "enhancing"]
    assert saved["model_kwargs"]["out_channels"] == 3 and saved["n_classes"] == 5
    assert saved["settings"]["region_training"] == "regions"

    out = predict_probs(tmp_path / "model.pt", images, device="cpu", threads=1, flips=("hflip", "vflip"))
    prob = out["prob"].astype(np.float32)
    assert prob.shape == (N, 3, H, W) and out["prob_tta"].shape == (N, 3, H, W)
    assert prob.min() >= 0 and prob.max() <= 1
    assert not np.allclose(prob.sum(1), 1.0, atol=0.05), "independent sigmoids, not a softmax"
    # the map is the model's per-region sigmoid
    model_out = _direct_sigmoid(tmp_path / "model.pt", images[:4])
    np.testing.assert_allclose(prob[:4], model_out, atol=2e-3)
    # flips TTA: the mean of the plain and the flipped-back maps
    flipped_h = _direct_sigmoid(tmp_path / "model.pt", images[:4, :, :, ::-1])[..., ::-1]
    flipped_v = _direct_sigmoid(tmp_path / "model.pt", images[:4, :, ::-1])[..., ::-1, :]
    np.testing.assert_allclose(out["prob_tta"][:4].astype(np.float32), (model_out + flipped_h + flipped_v) / 3,
                               atol=2e-3)
    # the probability of the complete region on the out-of-fold images is higher inside it
    complete = np.isin(masks[16:], [1, 2, 3, 4])
    assert prob[16:, 0][complete].mean() > prob[16:, 0][~complete & (masks[16:] != IGNORE_LABEL)].mean() + 0.2


def _direct_sigmoid(path, images):
    from plexus.inference.predict import load_model

    model, meta = load_model(path, "cpu")
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    mean = torch.tensor(meta["mean"])[None, :, None, None]
    std = torch.tensor(meta["std"])[None, :, None, None]
    with torch.no_grad():
        return torch.sigmoid(model((x - mean) / std)).numpy()


def test_region_training_with_patches_and_foreground_sampling(tmp_path):
    images, masks = _dataset()
    settings = _settings(region_training="regions", epochs=2, patch_size=[8, 8], patches_per_image=2,
                         foreground_fraction=0.5, loss="neg_log_dice", dice_reduction="image", channel_dropout=0.2)
    _, rows = _train(tmp_path, settings, (images, masks), n_classes=5, regions=REGIONS, region_names=NAMES)
    assert len(rows) == 2 and all(np.isfinite(r["train_loss"]) for r in rows)
    out = predict_probs(tmp_path / "model.pt", images[:5], device="cpu", threads=1, flips=("hflip",))
    assert out["prob"].shape == (5, 3, H, W) and out["prob_tta"].shape == (5, 3, H, W)
    assert 0 <= out["prob"].min() and out["prob"].max() <= 1


def test_labels_mode_is_unchanged(tmp_path):
    """region_training absent, or labels with the regions offered: the same weights and history."""
    images, masks = _dataset()
    base = dict(epochs=2, augment={"hflip": 0.5, "shift": 0.05})
    _, rows_a = _train(tmp_path / "a", _settings(**base), (images, masks), n_classes=5)
    _, rows_b = _train(tmp_path / "b", _settings(region_training="labels", **base), (images, masks), n_classes=5,
                       regions=REGIONS, region_names=NAMES)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and "activation" not in a and "regions" not in a
    assert a["model_kwargs"] == b["model_kwargs"] and a["model_kwargs"]["out_channels"] == 5
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)
    out = predict_probs(tmp_path / "b" / "model.pt", images[:3], device="cpu", threads=1)
    np.testing.assert_allclose(out["prob"].astype(np.float32).sum(1), 1.0, atol=3e-3)  # still a softmax


def test_regions_mode_without_regions_in_the_arrays_is_an_error(tmp_path):
    images, masks = _dataset()
    with pytest.raises(ValueError, match="region_training"):
        _train(tmp_path, _settings(region_training="regions", epochs=1), (images, masks), n_classes=5)
    # through the stage: train.npz without regions
    np.savez(tmp_path / "train.npz", image_id=np.array([f"i{n}" for n in range(N)]), images=images, masks=masks,
             classes=np.array(["background", "necrosis", "edema", "non_enhancing", "enhancing"]))
    pd.DataFrame({"image_id": [f"i{n}" for n in range(N)], "subject": [f"s{n // 2}" for n in range(N)],
                  "fold": [n % 2 for n in range(N)]}).to_csv(tmp_path / "folds.csv", index=False)
    entry = {"arch": "unet", "input_size": [H, W], "epochs": 1, "base_channels": 4, "depth": 2,
             "region_training": "regions"}
    with pytest.raises(ValueError, match="region_training.*regions"):
        train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, entry, tmp_path / "out", tmp_path / "ck.pt",
                    run_name="m")
    # regions that do not match the classes
    with pytest.raises(ValueError, match="5 classes"):
        _train(tmp_path, _settings(region_training="regions", epochs=1), (images, masks), n_classes=5,
               regions=REGIONS[:, :4])


def test_stage_passes_the_regions_of_the_arrays(tmp_path):
    images, masks = _dataset()
    ids = np.array([f"i{n}" for n in range(N)])
    np.savez(tmp_path / "train.npz", image_id=ids, images=images, masks=masks,
             classes=np.array(["background", "necrosis", "edema", "non_enhancing", "enhancing"]),
             regions=REGIONS, region_names=NAMES)
    pd.DataFrame({"image_id": ids, "subject": [f"s{n // 2}" for n in range(N)],
                  "fold": [n % 2 for n in range(N)]}).to_csv(tmp_path / "folds.csv", index=False)
    entry = {"arch": "unet", "input_size": [H, W], "epochs": 1, "batch_size": 8, "base_channels": 4, "depth": 2,
             "region_training": "regions", "amp": False}
    train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, entry, tmp_path / "out", tmp_path / "ck.pt",
                run_name="m", threads=1)
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert saved["regions"] == REGIONS.tolist() and saved["region_names"] == NAMES.tolist()
    assert saved["model_kwargs"]["out_channels"] == 3


def test_setting_defaults_to_labels_and_refuses_a_presence_head():
    required = {"arch": "unet", "input_size": [H, W], "epochs": 1}
    assert TrainSettings.from_config(required).region_training == "labels"
    with pytest.raises(ValueError, match="region_training"):
        TrainSettings.from_config({**required, "region_training": "regions", "presence_head": True})
    with pytest.raises(ValueError, match="region_training"):
        TrainSettings.from_config({**required, "region_training": "areas"})
