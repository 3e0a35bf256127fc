"""Training of one network on one fold, resumable and deterministic.

:func:`train_model` trains a registered model (:mod:`plexus.models`) described by
a :class:`plexus.training.settings.TrainSettings` on ``images[train_idx]`` and
validates on ``images[val_idx]``, writing ``model.pt``, ``history.csv`` and
``train_info.json`` (see ``docs/contracts.md``, "Trained network").

Determinism and resume
----------------------
Every epoch draws all its randomness from ``epoch_seed(seed, epoch)``: a
``torch.Generator`` seeded with it shuffles the training set and draws the
augmentation, ``torch.manual_seed`` of it drives dropout, and a NumPy generator
seeded with ``(noise seed, seed, epoch)`` picks the noisy samples and their noise.
No random state has to be carried across epochs, so a run restarted from the
checkpoint of epoch ``e`` (model, optimizer and grad-scaler state, history;
:mod:`plexus.training.checkpoint`) reproduces exactly the weights and history (but
for the ``seconds`` column) of an uninterrupted run on the same device with the
same thread count. Threads, determinism flags and the global torch RNG are set for
the run and restored on return (:func:`plexus.training.determinism.torch_run_context`).
The checkpoint is deleted once the outputs are written.

Divergence
----------
An epoch whose training or validation loss is not finite stops the run with
:class:`TrainingDiverged` naming the model, fold and epoch. That epoch's
checkpoint is not written, so the last finite epoch's checkpoint is kept, and no
``model.pt``, ``history.csv`` or ``train_info.json`` is written.

Collapse
--------
A collapse with finite losses (the epoch training loss gives back more than ``collapse_share``
of its progress since the first epoch for ``collapse_epochs`` epochs) is handled per ``on_collapse``
(:mod:`plexus.training.guard`): ``recover`` reloads the best-training-loss state and lowers
the learning rate, ``warn`` logs it, ``error`` (or a collapse past ``max_recoveries``)
raises :class:`TrainingCollapsed` like a divergence. Every event is logged and listed in
``train_info.json`` (``training_health``, ``collapse_events``).

Validation and saved weights
----------------------------
``validation`` (:attr:`TrainSettings.validation_images`) says which images the per-epoch
validation (``history.csv``'s ``val_*``, its ``val_on`` column) is measured on. ``auto`` (the
default) holds out the inner split only when a decision reads the validation (early stopping,
``patience`` > 0; the plateau scheduler); otherwise every image of the training part is
trained on and the out-of-fold images ``val_idx`` are monitored, a number that nothing reads
(issue 26). ``inner`` always holds out a subject-grouped share of the training part
(:func:`plexus.training.guard.inner_split`), so ``val_idx`` is never read (only predicted
later); ``oof`` always validates on ``val_idx``. ``model.pt`` holds the weights after the
**final** epoch, or with early stopping those of the best inner-validation epoch (``weights``:
``final`` or ``best_inner``); the normalisation is the whole training part's.

Refit (``refit: true``, with a decision read on the inner split): the run above is the
*selection* run, written to ``selection/`` under the output folder; then the network is
trained again from the same initial weights on the whole training part for the chosen number
of epochs (the best inner epoch, or the epochs run), each epoch at the learning rate the
selection run used in it (the ``lr`` column of its history), with no early stopping and the
out-of-fold images as a monitor. Its outputs are the run's (``weights``: ``refit``). A killed
refit resumes from its checkpoint; a complete selection run (its ``train_info.json`` carries
the run's hash) is not run again.
Learning rate: ``poly``, ``cosine`` and ``none`` are set at the start of every epoch from
:func:`plexus.training.optim.lr_factor` (times the collapse guard's ``lr_scale``).

Ignored pixels: with ``n_classes``, masks may hold :data:`plexus.labels.IGNORE_LABEL`;
their one-hot target is all zero, so they count in no loss term and no validation Dice.

Regions (``region_training: regions``, nnU-Net's region-based training): with an (R, K) bool
``regions`` matrix the network has R outputs, one sigmoid per region. Batches carry the label
map's one-hot target through cropping and augmentation exactly as the classes path does; the
loss (:func:`plexus.training.losses.region_loss`) maps it to the multi-hot region target
(region r = the pixels whose label is one of r's) and applies the model's loss per region as a
binary one. The validation Dice is the mean over the regions of the hard Dice at 0.5 (1 for a
region in neither prediction nor truth), ignored pixels left out. ``model.pt`` records
``activation: "sigmoid_regions"``, ``regions`` and ``region_names`` for inference.

Data handling: the whole uint8 dataset lives on the device as one tensor and
batches are gathered from it by index; images are converted to float, z-scored
with the training part's mean/std and augmented on the device. Mixed precision
(``amp``) autocasts in ``amp_dtype`` on CUDA (float16 with a GradScaler, or
bfloat16) and, with bfloat16 only, on the CPU (:mod:`plexus.training.precision`).
Model and batches use the channels_last memory format by default on every device
(``channels_last: false`` turns it off): on the CPU it measured 1.2-1.5x faster
than channels-first with oneDNN (``benchmarks/bench_train.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from plexus.data.noise import add_gaussian_noise
from plexus.device import pick_device
from plexus.io.atomic import write_csv, write_json
from plexus.labels import IGNORE_LABEL
from plexus.models import build_model, count_parameters, is_two_head
from plexus.training import checkpoint
from plexus.training.augment import augment_batch, random_crops
from plexus.training.determinism import torch_run_context
from plexus.training.guard import Collapse, CollapseGuard, EarlyStopper, inner_split
from plexus.training.losses import region_loss, regions_from_onehot, segmentation_loss, two_head_loss
from plexus.training.optim import lr_factor, make_optimizer, make_scheduler
from plexus.training.precision import autocast_dtype, dtype_name
from plexus.training.settings import TrainSettings

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice", "val_on", "lr", "seconds"]


class TrainingDiverged(ValueError):
    """A non-finite training or validation loss; the message names model, fold and epoch."""

    def __init__(self, message: str, *, run_name: str, fold: int | None, epoch: int):
        super().__init__(message)
        self.run_name, self.fold, self.epoch = run_name, fold, epoch


class TrainingCollapsed(TrainingDiverged):
    """A collapse with finite losses that ``on_collapse`` does not let pass; names model, fold and epochs."""


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for ``epoch`` of a run seeded ``seed`` (stable across processes)."""
    digest = hashlib.sha256(f"plexus-train|{int(seed)}|{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------- one epoch


@dataclass
class _Setup:
    """Everything an epoch needs besides model, optimizer and data."""

    device: torch.device
    mean: float | torch.Tensor  # one value, or (1, C, 1, 1) per channel
    std: float | torch.Tensor
    batch_size: int
    seg_loss: Callable
    presence_weight: float
    two_head: bool
    augment: dict | None
    autocast: torch.dtype | None = None  # None: float32
    channels_last: bool = False
    n_classes: int | None = None  # None: a binary mask and one sigmoid logit
    present: torch.Tensor | None = None  # (N, C) 1.0 where the image has the channel
    channel_dropout: float = 0.0
    grad_clip: float = 0.0
    patch_size: tuple[int, int] | None = None  # train on random crops of this size
    patches_per_image: int = 1
    foreground_fraction: float = 0.0  # with patch_size: share of each batch's crops centred on foreground
    regions: torch.Tensor | None = None  # region training: (R, K) float 0/1, the labels of each region


def _batch(images_t, masks_t, idx, setup: _Setup):
    """Normalised images (B,C,H,W) and targets: (B,1,H,W) binary, or one-hot (B,K,H,W).

    A missing channel (``present`` 0) is 0 after normalisation: the training mean.
    """
    x = images_t.index_select(0, idx).float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = (x - setup.mean) / setup.std
    if setup.present is not None:
        x = x * setup.present.index_select(0, idx)[:, :, None, None]
    y = masks_t.index_select(0, idx)
    if setup.n_classes is None:
        y = y.unsqueeze(1).float()
    else:  # an ignored pixel's one-hot target is all zero
        labelled = y != IGNORE_LABEL
        y = torch.nn.functional.one_hot(torch.where(labelled, y, 0).long(), setup.n_classes)
        y = (y * labelled.unsqueeze(-1)).permute(0, 3, 1, 2).float()
    return x, y


def _drop_channels(x: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each channel of each sample with probability ``rate``, never all channels of a sample."""
    keep = torch.rand(x.shape[0], x.shape[1], generator=generator) >= rate
    keep[~keep.any(1)] = True
    return x * keep.to(device=x.device, dtype=x.dtype)[:, :, None, None]


def _loss(model, x, y, setup: _Setup):
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if setup.autocast is None:
        ctx = contextlib.nullcontext()
    else:
        ctx = torch.autocast(setup.device.type, dtype=setup.autocast)
    with ctx:
        out = model(x)
    if setup.two_head:
        seg, presence = out
        loss = two_head_loss(seg, presence, y, setup.seg_loss, setup.presence_weight)
    else:
        seg, presence = out, None
        loss = setup.seg_loss(seg, y)
    return loss, seg, presence


def _train_epoch(
    model, optimizer, scaler, images_t, masks_t, train_idx_t, setup: _Setup, generator: torch.Generator
) -> float:
    """One shuffled pass over ``train_idx_t``; returns the image-weighted mean loss."""
    model.train()
    samples = train_idx_t if setup.patches_per_image == 1 else train_idx_t.repeat(setup.patches_per_image)
    n = len(samples)
    perm = torch.randperm(n, generator=generator).to(setup.device)
    order = samples.index_select(0, perm)
    total = torch.zeros((), dtype=torch.float64, device=setup.device)
    for start in range(0, n, setup.batch_size):
        idx = order[start : start + setup.batch_size]
        x, y = _batch(images_t, masks_t, idx, setup)
        if setup.patch_size is not None:
            x, y = random_crops(x, y, setup.patch_size, generator, setup.foreground_fraction)
        if setup.channel_dropout and x.shape[1] > 1:
            x = _drop_channels(x, setup.channel_dropout, generator)
        if setup.augment:
            x, y = augment_batch(x, y, setup.augment, generator)
        loss, _, _ = _loss(model, x, y, setup)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if setup.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), setup.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(idx)
    return float(total.item() / n)


@torch.no_grad()
def _evaluate(model, images_t, masks_t, val_idx_t, setup: _Setup, presence_gate: float = 0.5) -> tuple[float, float]:
    """Validation loss and mean hard Kaggle Dice (prediction = prob > 0.5).

    For two-head models the prediction is emptied where the presence probability
    is below ``presence_gate`` (as :func:`plexus.inference.predict.predict_probs` does).
    """
    model.eval()
    n = len(val_idx_t)
    total_loss = torch.zeros((), dtype=torch.float64, device=setup.device)
    total_dice = torch.zeros((), dtype=torch.float64, device=setup.device)
    for start in range(0, n, setup.batch_size):
        idx = val_idx_t[start : start + setup.batch_size]
        x, y = _batch(images_t, masks_t, idx, setup)
        loss, seg, presence = _loss(model, x, y, setup)
        total_loss += loss.double() * len(idx)
        if setup.regions is not None:
            total_dice += _region_dice(seg.float(), y, setup.regions).sum()
            continue
        if setup.n_classes is not None:
            total_dice += _class_dice(seg.float().argmax(1), y.argmax(1), setup.n_classes, y.amax(1) > 0).sum()
            continue
        pred = (seg.float() > 0).flatten(1)
        if presence is not None:
            pred = pred & (torch.sigmoid(presence.float()) >= presence_gate)[:, None]
        total_dice += _hard_dice(pred, y.flatten(1) > 0.5).sum()
    return float(total_loss.item() / n), float(total_dice.item() / n)


def _hard_dice(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per row of boolean (B, P) masks, the Dice; 1 when both are empty (the Kaggle convention)."""
    inter = (pred & true).sum(1).double()
    denom = (pred.sum(1) + true.sum(1)).double()
    return torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))


def training_loss(settings: TrainSettings, n_classes: int | None = None, regions=None):
    """The segmentation loss a run trains with: the model's ``loss`` and ``dice_reduction``, a softmax
    over ``n_classes`` or a sigmoid (one per region with ``regions``), ``neg_log_dice`` floored at
    ``log_dice_floor``."""
    s = settings
    if regions is not None:
        return region_loss(s.loss, s.dice_reduction, regions, s.log_dice_floor)
    return segmentation_loss(s.loss, s.dice_reduction, multiclass=n_classes is not None,
                             log_dice_floor=s.log_dice_floor)


def _class_dice(pred: torch.Tensor, true: torch.Tensor, n_classes: int,
                labelled: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the mean over foreground classes of the hard Dice (1 when a class is in neither).

    Pixels outside ``labelled`` (ignored ones) count in neither the prediction nor the truth.
    """
    keep = torch.ones_like(pred, dtype=torch.bool) if labelled is None else labelled
    dices = [_hard_dice(((pred == c) & keep).flatten(1), ((true == c) & keep).flatten(1))
             for c in range(1, n_classes)]
    return torch.stack(dices, 1).mean(1)


def _region_dice(logits: torch.Tensor, onehot: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Per image, the mean over regions of the hard Dice of ``sigmoid(logits) > 0.5`` (1 when a region is in neither).

    ``onehot`` (B,K,H,W) is the label map's target (all zero at ignored pixels, which count in
    neither the prediction nor the truth); ``regions`` the (R,K) matrix.
    """
    target, labelled = regions_from_onehot(onehot, regions)
    keep = labelled > 0
    pred = (logits > 0) & keep
    true = (target > 0.5) & keep
    dices = [_hard_dice(pred[:, r].flatten(1), true[:, r].flatten(1)) for r in range(regions.shape[0])]
    return torch.stack(dices, 1).mean(1)


def _check_regions(settings: TrainSettings, regions, region_names, n_classes):
    """The (R, K) bool regions matrix and its R names for ``region_training: regions``; None, None otherwise."""
    if settings.region_training != "regions":
        return None, None
    if regions is None:
        raise ValueError("model setting region_training: regions needs the regions in the arrays (train.npz keys "
                         "regions and region_names, written when the config has regions); these arrays have none")
    matrix = np.asarray(regions)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 2:
        raise ValueError(f"regions must be an (R, K) matrix with R >= 1 regions over K >= 2 labels, "
                         f"got shape {matrix.shape}")
    if matrix.dtype != bool and not np.isin(matrix, (0, 1)).all():
        raise ValueError("regions must be a bool (or 0/1) matrix")
    matrix = matrix.astype(bool)
    if n_classes is not None and matrix.shape[1] != int(n_classes):
        raise ValueError(f"regions cover {matrix.shape[1]} labels but the masks have {n_classes} classes")
    empty = np.flatnonzero(~matrix.any(1))
    if empty.size:
        raise ValueError(f"region(s) {empty.tolist()} hold no label")
    names = ([f"region_{r}" for r in range(len(matrix))] if region_names is None
             else [str(v) for v in np.asarray(region_names).reshape(-1)])
    if len(names) != len(matrix):
        raise ValueError(f"region_names has {len(names)} entries for {len(matrix)} regions")
    return matrix, names


# ---------------------------------------------------------------- inputs and data


def _validate_inputs(images, masks, train_idx, val_idx, settings: TrainSettings, n_classes=None, present=None):
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.dtype not in (np.uint8, np.uint16) or images.ndim not in (3, 4):
        raise ValueError(f"images must be uint8 or uint16, (N, H, W) or (N, C, H, W), "
                         f"got {images.dtype} {images.shape}")
    if masks.shape != images.shape[:1] + images.shape[-2:]:
        raise ValueError(f"masks shape {masks.shape} differs from images shape {images.shape}")
    masks = masks.astype(np.uint8, copy=False)
    if n_classes is not None and len(masks):
        classes = masks[masks != IGNORE_LABEL]
        if classes.size and int(classes.max()) >= n_classes:
            raise ValueError(f"masks hold class {int(classes.max())}, but there are {n_classes} classes "
                             f"(and {IGNORE_LABEL}, ignored)")
    if present is not None:
        channels = images.shape[1] if images.ndim == 4 else 1
        if np.shape(present) != (len(images), channels):
            raise ValueError(f"present must be (N, C) = ({len(images)}, {channels}), got {np.shape(present)}")
    train_idx = np.asarray(train_idx, dtype=np.int64).reshape(-1)
    val_idx = np.asarray(val_idx, dtype=np.int64).reshape(-1)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"train_idx and val_idx must both be non-empty (got {len(train_idx)} and {len(val_idx)})")
    n = len(images)
    for name, idx in (("train_idx", train_idx), ("val_idx", val_idx)):
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"{name} out of range for {n} images")
    if settings.input_size != images.shape[-2:]:
        raise ValueError(
            f"images are {images.shape[-2]}x{images.shape[-1]} but settings input_size is {list(settings.input_size)}"
        )
    return images, masks, train_idx, val_idx


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    if array.dtype == np.uint16:  # torch indexes few ops on uint16; float32 holds it exactly
        array = array.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def _epoch_images(images, images_t, train_idx, noise, seed, epoch, device):
    """Training images of ``epoch``: a fraction of the training samples with noise."""
    if not noise or float(noise.get("sigma", 0.0)) == 0 or float(noise.get("fraction", 0.0)) == 0:
        return images_t
    rng = np.random.default_rng([int(noise.get("seed", 0)), int(seed), int(epoch)])
    n_noisy = int(round(float(noise["fraction"]) * len(train_idx)))
    chosen = np.sort(train_idx[rng.choice(len(train_idx), size=n_noisy, replace=False)])
    seeds = rng.integers(0, 2**32, size=n_noisy, dtype=np.uint64)
    noisy = add_gaussian_noise(images[chosen], float(noise["sigma"]), seeds)
    out = images_t.clone()
    out[torch.from_numpy(chosen).to(device)] = _to_device(noisy, device)
    return out


@dataclass(frozen=True, eq=False)
class _Run:
    """One call of :func:`train_model`: its inputs, identity and callbacks."""

    images: np.ndarray
    masks: np.ndarray
    train_idx: np.ndarray  # the fold's training part (normalisation)
    val_idx: np.ndarray  # the out-of-fold images
    fit_idx: np.ndarray  # trained on: train_idx, less the inner split
    monitor_idx: np.ndarray  # validated on each epoch: the inner split, or val_idx with validation oof
    settings: TrainSettings
    out_dir: Path
    checkpoint_path: Path
    run_name: str
    fold: int | None
    device: torch.device
    noise: dict | None
    n_classes: int | None
    present: np.ndarray | None
    regions: np.ndarray | None  # region training: (R, K) bool; None: labels
    region_names: list[str] | None
    log: Callable[[str], None]
    on_epoch_end: Callable[[int, dict], None] | None
    hash: str
    t_start: float
    epochs: int  # epochs of this run: the settings', or the refit's chosen number
    phase: str = "train"  # train (one run), selection (before a refit) or refit
    lr_schedule: tuple[float, ...] | None = None  # refit: the selection run's learning rate of each epoch
    refit_of: dict | None = None  # refit: what the selection run chose

    @property
    def label(self) -> str:
        fold = "" if self.fold is None else f", fold {self.fold}"
        return f"model {self.run_name}{fold}"


@dataclass(frozen=True, eq=False)
class _DeviceData:
    images: torch.Tensor
    masks: torch.Tensor
    fit_idx: torch.Tensor
    monitor_idx: torch.Tensor

    @classmethod
    def of(cls, run: _Run) -> _DeviceData:
        dev = run.device
        return cls(_to_device(run.images, dev), _to_device(run.masks, dev),
                   torch.from_numpy(run.fit_idx).to(dev), torch.from_numpy(run.monitor_idx).to(dev))


# ---------------------------------------------------------------- the run


def train_model(
    images,
    masks,
    train_idx,
    val_idx,
    settings: TrainSettings,
    out_dir,
    *,
    checkpoint_path,
    run_name: str = "model",
    fold: int | None = None,
    device="auto",
    threads: int | None = None,
    noise: dict | None = None,
    n_classes: int | None = None,
    present=None,
    subjects=None,
    regions=None,
    region_names=None,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train one network; write ``model.pt``, ``history.csv``, ``train_info.json``.

    ``images`` uint8 (N,H,W) and ``masks`` {0,1} uint8 (N,H,W) at
    ``settings.input_size``; or, for any dataset, images uint8/uint16 (N,C,H,W) with
    ``present`` (N,C) bool (False: the channel is missing, filled with 0 after
    per-channel normalisation) and ``masks`` class indices with ``n_classes`` classes
    (softmax output; None keeps the binary sigmoid; :data:`plexus.labels.IGNORE_LABEL` marks ignored
    pixels). With ``settings.region_training`` ``regions``, ``regions`` (R, K) bool (row r: the labels
    of region r; K = ``n_classes``, or inferred from it when ``n_classes`` is None) and
    ``region_names`` (R,) give one sigmoid output per region (a ValueError without ``regions``);
    with ``labels`` they are ignored. ``subjects`` (one per image, or None: each image its own subject) group the
    inner validation split. ``run_name`` and ``fold`` name the run in messages
    (:class:`TrainingDiverged`). ``noise``: ``None`` or ``{"sigma", "fraction",
    "seed"}``, Gaussian noise (8-bit units) added before z-scoring to that fraction
    of the training samples, redrawn each epoch. ``on_epoch_end(epoch, row)`` is
    called after each epoch's checkpoint is written (a hook for tests and progress
    reporting). Returns a summary dict. Raises :class:`TrainingDiverged` (non-finite loss) and
    :class:`TrainingCollapsed` (see ``on_collapse``).
    """
    t_start = time.perf_counter()
    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings must be a TrainSettings (TrainSettings.from_config), got {type(settings).__name__}")
    regions, region_names = _check_regions(settings, regions, region_names, n_classes)
    if regions is not None:
        n_classes = regions.shape[1]  # the labels' one-hot carries the target through crops and augmentation
    images, masks, train_idx, val_idx = _validate_inputs(images, masks, train_idx, val_idx, settings, n_classes,
                                                         present)
    present = None if present is None else np.asarray(present, dtype=bool)
    identity = settings.to_dict()
    if n_classes is not None:
        identity["n_classes"] = int(n_classes)
    if regions is not None:
        identity["regions"] = regions.tolist()
        identity["region_names"] = region_names
    if present is not None:
        identity["present"] = hashlib.sha256(present.tobytes()).hexdigest()
    if settings.validation_images == "inner":
        if subjects is not None:
            subjects = np.asarray(subjects).astype(str)
            if subjects.shape != (len(images),):
                raise ValueError(f"subjects must be one per image ({len(images)}), got shape {subjects.shape}")
            identity["subjects"] = hashlib.sha256("\0".join(subjects).encode()).hexdigest()
        else:
            log("validation inner without subjects: each image is its own group of the inner split")
        if subjects is not None and len(np.unique(subjects[train_idx])) < 2:
            log("validation inner: the training part has one subject; its inner split holds out images of "
                "that subject (not subject-grouped)")
        fit_idx, monitor_idx = inner_split(train_idx, subjects, settings.inner_share, settings.seed)
    else:
        fit_idx, monitor_idx = train_idx, val_idx
        if settings.validation == "auto":
            log("validation auto: no decision reads the validation (no early stopping, no plateau scheduler), so "
                "every image of the training part is trained on and the out-of-fold images are only monitored")
    dev = pick_device(device)
    run = _Run(
        images=images, masks=masks, train_idx=train_idx, val_idx=val_idx, fit_idx=fit_idx, monitor_idx=monitor_idx,
        settings=settings,
        out_dir=Path(out_dir), checkpoint_path=Path(checkpoint_path), run_name=run_name, fold=fold, device=dev,
        noise=noise, n_classes=n_classes, present=present, regions=regions, region_names=region_names, log=log,
        on_epoch_end=on_epoch_end, t_start=t_start, epochs=settings.epochs,
        hash=checkpoint.run_hash(identity, train_idx, val_idx, images, masks, noise),
    )
    with torch_run_context(dev, threads, settings.deterministic):
        if not settings.refit:
            return _train(run)
        selection = dataclasses.replace(run, out_dir=run.out_dir / "selection", phase="selection")
        chosen = _selection(selection)
        lrs = tuple(chosen.pop("lrs"))
        refit = dataclasses.replace(
            run, fit_idx=run.train_idx, monitor_idx=run.val_idx, epochs=chosen["epochs"], phase="refit",
            lr_schedule=lrs, refit_of=chosen, t_start=time.perf_counter(),
            hash=checkpoint.run_hash({**identity, "refit": {"epochs": chosen["epochs"], "lrs": list(lrs)}},
                                     train_idx, val_idx, images, masks, noise))
        log(f"refit: training again on all {len(run.train_idx)} images of the training part for the "
            f"{chosen['epochs']} epochs the selection run chose ({chosen['why']})")
        return _train(refit)


def _selection(run: _Run) -> dict:
    """Run (or reuse, when complete for this run's hash) the selection run of a refit; what it chose:
    ``epochs``, ``why``, ``lrs`` (the learning rate of each of those epochs) and ``selection``."""
    info_path, history_path = run.out_dir / "train_info.json", run.out_dir / "history.csv"
    if info_path.exists() and history_path.exists() and json.loads(info_path.read_text()).get("run_hash") == run.hash:
        run.log(f"refit: the selection run in {run.out_dir} is complete for these settings and data; not run again")
    else:
        _train(run)
    info = json.loads(info_path.read_text())
    history = pd.read_csv(history_path)
    if info["weights"] == "best_inner":
        epochs, why = int(info["best_inner_epoch"]), "the best inner-validation epoch"
    else:
        epochs, why = int(info["epochs_run"]), "the epochs it ran"
    return {"epochs": epochs, "why": why, "lrs": history["lr"].to_numpy(float)[:epochs].tolist(),
            "selection": f"{run.out_dir.name}/train_info.json", "n_inner": int(info["n_val"])}


def _train(run: _Run) -> dict:
    model, optimizer, scaler, setup = _build(run)
    replay = run.lr_schedule is not None  # a refit replays its selection run's rates: no scheduler, no stopping
    scheduler = None if replay else make_scheduler(optimizer, run.settings)
    guard, stopper = CollapseGuard(run.settings), EarlyStopper(0 if replay else run.settings.patience)
    history, start_epoch = _resume(run, model, optimizer, scaler, scheduler, guard, stopper)
    data = _DeviceData.of(run)
    for epoch in range(start_epoch + 1, run.epochs + 1):
        if stopper.stopped:
            break
        if scheduler is None:  # an epoch schedule: a function of the epoch and the guard's scale
            base = run.lr_schedule[epoch - 1] if replay else run.settings.lr * lr_factor(run.settings, epoch)
            for group in optimizer.param_groups:
                group["lr"] = base * guard.lr_scale
        row = _run_epoch(run, model, optimizer, scaler, setup, data, epoch)
        history.append(row)
        _log_epoch(run, row)
        _check_finite(run, row)
        collapse = guard.observe(epoch, row["train_loss"], model, optimizer, scaler)
        stopper.observe(epoch, row["val_loss"], model)  # the weights the row was validated with
        if collapse is not None:
            _on_collapse(run, guard, collapse, model, optimizer, scaler)
        if scheduler is not None:
            scheduler.step(row["val_loss"])
        if stopper.stopped:
            run.log(f"early stopping after epoch {epoch}: no inner-validation loss improvement for "
                    f"{stopper.patience} epochs; keeping the weights of epoch {stopper.best_epoch}")
        checkpoint.save_checkpoint(
            run.checkpoint_path, run_hash=run.hash, epoch=epoch, model=model, optimizer=optimizer, scaler=scaler,
            history=history, settings=run.settings.to_dict(), scheduler=scheduler,
            extra={"guard": guard.state_dict(), "stopper": stopper.state_dict()},
        )
        if run.on_epoch_end is not None:
            run.on_epoch_end(epoch, dict(row))
    if stopper.best_model is not None:
        model.load_state_dict(stopper.best_model)
    return _finish(run, model, setup, history, start_epoch, guard, stopper)


def _on_collapse(run: _Run, guard: CollapseGuard, collapse: Collapse, model, optimizer, scaler) -> None:
    """Act on a detected collapse per ``on_collapse``: recover, warn, or raise (before the epoch's checkpoint)."""
    s = run.settings
    what = f"{run.label}: training collapsed: {collapse.describe()}"
    if s.on_collapse == "warn":
        guard.record(collapse, "warned")
        run.log(f"WARNING {what}; on_collapse warn: training goes on")
        return
    if s.on_collapse == "recover" and guard.can_recover():
        event = guard.recover(model, optimizer, scaler, collapse)
        run.log(f"WARNING {what}; recovery {guard.recoveries}/{s.max_recoveries}: reloaded the weights of epoch "
                f"{collapse.best_epoch}, learning rate now x{event['lr_scale']:g} of the schedule's")
        return
    why = ("on_collapse error" if s.on_collapse == "error"
           else f"still collapsing after {guard.recoveries} recoveries (max_recoveries {s.max_recoveries})")
    raise TrainingCollapsed(f"{what}; {why}: no model written", run_name=run.run_name, fold=run.fold,
                            epoch=collapse.epochs[-1])


def _build(run: _Run):
    """Model (initial weights from ``epoch_seed(seed, 0)``), optimizer, grad scaler and epoch setup."""
    s = run.settings
    mean, std = _normalisation(run)
    torch.manual_seed(epoch_seed(s.seed, 0))  # initial weights
    model = build_model(s.arch, **_model_kwargs(run))
    amp = autocast_dtype(run.device, s.amp, s.amp_dtype)
    model = model.to(run.device, memory_format=torch.channels_last) if s.channels_last else model.to(run.device)
    optimizer = make_optimizer(model, s)
    scaler = torch.amp.GradScaler(run.device.type, enabled=amp == torch.float16)
    setup = _Setup(
        device=run.device,
        mean=mean,
        std=std,
        batch_size=s.batch_size,
        seg_loss=training_loss(s, run.n_classes, run.regions),
        presence_weight=s.presence_weight,
        two_head=is_two_head(model),
        augment=None if s.augment.is_identity() else s.augment.to_dict(),
        autocast=amp,
        channels_last=s.channels_last,
        n_classes=run.n_classes,
        present=None if run.present is None else torch.from_numpy(run.present).float().to(run.device),
        channel_dropout=s.channel_dropout,
        grad_clip=s.grad_clip,
        patch_size=s.patch_size,
        patches_per_image=s.patches_per_image if s.patch_size is not None else 1,
        foreground_fraction=s.foreground_fraction,
        regions=None if run.regions is None else torch.from_numpy(run.regions).float().to(run.device),
    )
    if not isinstance(mean, float):
        setup.mean = torch.tensor(mean, dtype=torch.float32, device=run.device)[None, :, None, None]
        setup.std = torch.tensor(std, dtype=torch.float32, device=run.device)[None, :, None, None]
    return model, optimizer, scaler, setup


def _model_kwargs(run: _Run) -> dict:
    """The network's keyword arguments: one output per class (softmax), per region (sigmoids), or one (binary)."""
    outputs = run.n_classes if run.regions is None else len(run.regions)
    return run.settings.model_kwargs(_channels(run.images), outputs)


def _channels(images: np.ndarray) -> int:
    return 1 if images.ndim == 3 else int(images.shape[1])


def _normalisation(run: _Run) -> tuple[float, float] | tuple[list[float], list[float]]:
    """Mean and std of the training part: one pair for (N,H,W) images, one per channel for (N,C,H,W).

    Per channel, only the images that have the channel count (``present``).
    """
    train_images = run.images[run.train_idx]
    if run.images.ndim == 3:
        mean = float(train_images.mean(dtype=np.float64))
        std = float(train_images.std(dtype=np.float64))
        return mean, std if std > 0 else 1.0
    means, stds = [], []
    for c in range(train_images.shape[1]):
        rows = train_images[:, c] if run.present is None else train_images[run.present[run.train_idx, c], c]
        m = float(rows.mean(dtype=np.float64)) if rows.size else 0.0
        sd = float(rows.std(dtype=np.float64)) if rows.size else 1.0
        means.append(m)
        stds.append(sd if sd > 0 else 1.0)
    return means, stds


def _resume(run: _Run, model, optimizer, scaler, scheduler, guard: CollapseGuard,
            stopper: EarlyStopper) -> tuple[list[dict], int]:
    """History and last epoch of this run's checkpoint, loaded into the objects; ``([], 0)`` if none."""
    checkpoint.remove_stale_temporaries(run.checkpoint_path)
    ck = checkpoint.load_checkpoint(run.checkpoint_path, run.hash, run.log)
    if ck is None:
        return [], 0
    history, epoch = checkpoint.restore(ck, model, optimizer, scaler, scheduler)
    guard.load_state_dict(ck["guard"])
    stopper.load_state_dict(ck["stopper"])
    run.log(f"resuming from checkpoint {run.checkpoint_path} after epoch {epoch}/{run.epochs}")
    return history, epoch


def _run_epoch(run: _Run, model, optimizer, scaler, setup: _Setup, data: _DeviceData, epoch: int) -> dict:
    """Train and validate one epoch; its history row."""
    t0 = time.perf_counter()
    lr = float(optimizer.param_groups[0]["lr"])  # the rate this epoch trains at (a refit replays it)
    seed = run.settings.seed
    es = epoch_seed(seed, epoch)
    torch.manual_seed(es)  # dropout (CPU and CUDA)
    generator = torch.Generator().manual_seed(es)  # shuffling and augmentation
    images_t = _epoch_images(run.images, data.images, run.fit_idx, run.noise, seed, epoch, run.device)
    train_loss = _train_epoch(model, optimizer, scaler, images_t, data.masks, data.fit_idx, setup, generator)
    del images_t
    val_loss, val_dice = _evaluate(model, data.images, data.masks, data.monitor_idx, setup)
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - t0
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
            "val_on": _val_on(run), "lr": lr, "seconds": seconds}


def _val_on(run: _Run) -> str:
    """What the per-epoch validation is measured on: ``inner`` or ``oof``."""
    return "inner" if run.phase != "refit" and run.settings.validation_images == "inner" else "oof"


def _log_epoch(run: _Run, row: dict) -> None:
    run.log(
        f"epoch {row['epoch']}/{run.epochs} train_loss {row['train_loss']:.4f} "
        f"val_loss {row['val_loss']:.4f} val_dice {row['val_dice']:.4f} {row['seconds']:.1f}s"
    )


def _check_finite(run: _Run, row: dict) -> None:
    """Raise :class:`TrainingDiverged` if the epoch's losses are not finite (before its checkpoint is saved)."""
    if math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]):
        return
    epoch = row["epoch"]
    if epoch > 1 and run.checkpoint_path.exists():
        kept = f"the checkpoint of epoch {epoch - 1} is kept at {run.checkpoint_path}"
    else:
        kept = "no checkpoint of this run was written"
    raise TrainingDiverged(
        f"{run.label}: training diverged at epoch {epoch} (train_loss {row['train_loss']}, "
        f"val_loss {row['val_loss']}); {kept}",
        run_name=run.run_name,
        fold=run.fold,
        epoch=epoch,
    )


def _finish(run: _Run, model, setup: _Setup, history: list[dict], start_epoch: int, guard: CollapseGuard,
            stopper: EarlyStopper) -> dict:
    """Write ``model.pt``, ``history.csv``, ``train_info.json``, delete the checkpoint; the summary."""
    s = run.settings
    model_pt = {
        "arch": s.arch,
        "model_kwargs": _model_kwargs(run),
        "state_dict": checkpoint.cpu_state(model),
        "mean": setup.mean if isinstance(setup.mean, float) else setup.mean.flatten().tolist(),
        "std": setup.std if isinstance(setup.std, float) else setup.std.flatten().tolist(),
        "n_classes": run.n_classes,
        "input_size": [int(run.images.shape[-2]), int(run.images.shape[-1])],
        "settings": s.to_dict(),
        "weights": _weights(run, stopper),
        "epochs": run.epochs,
    }
    if run.regions is not None:  # n_classes stays the label maps' count; the outputs are the regions
        model_pt.update(activation="sigmoid_regions", regions=run.regions.tolist(), region_names=run.region_names)
    if stopper.best_model is not None:
        model_pt["best_epoch"] = stopper.best_epoch
    hist = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    info = _train_info(run, model, setup, hist, start_epoch, guard, stopper)
    write_csv(run.out_dir / "history.csv", hist)
    write_json(run.out_dir / "train_info.json", info)
    checkpoint.save_torch(model_pt, run.out_dir / "model.pt")
    run.checkpoint_path.unlink(missing_ok=True)

    last = history[-1]
    best = max(history, key=lambda r: r["val_dice"])
    return {
        "out_dir": str(run.out_dir),
        "device": str(run.device),
        "epochs": run.epochs,
        "resumed_from_epoch": start_epoch,
        "train_loss": last["train_loss"],
        "val_loss": last["val_loss"],
        "val_dice": last["val_dice"],
        "best_val_dice": best["val_dice"],
        "best_epoch": best["epoch"],
        "seconds": info["seconds"],
        "training_health": info["training_health"],
    }


def _weights(run: _Run, stopper: EarlyStopper) -> str:
    if run.phase == "refit":
        return "refit"
    return "final" if stopper.best_model is None else "best_inner"


def _validation_readers(run: _Run) -> list[str]:
    """The decisions that read the per-epoch validation numbers (none: a monitor only)."""
    if run.phase == "refit":
        return []
    return run.settings.validation_readers


def _train_info(run: _Run, model, setup: _Setup, hist: pd.DataFrame, start_epoch: int, guard: CollapseGuard,
                stopper: EarlyStopper) -> dict:
    dev = run.device
    return {
        "device": str(dev),
        "cuda_device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": setup.autocast is not None,
        "amp_dtype": dtype_name(setup.autocast),
        "channels_last": setup.channels_last,
        "deterministic": run.settings.deterministic,
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_job_partition": os.environ.get("SLURM_JOB_PARTITION"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "epochs": run.epochs,
        "resumed_from_epoch": start_epoch,
        "run_hash": run.hash,
        "n_train": int(len(run.fit_idx)),
        "n_train_part": int(len(run.train_idx)),
        "n_val": int(len(run.monitor_idx)),
        "n_oof": int(len(run.val_idx)),
        # what the per-epoch validation was measured on (inner or oof), the setting, and what read it
        "validation": _val_on(run),
        "validation_setting": run.settings.validation,
        "validation_read_by": _validation_readers(run),
        "refit": run.refit_of,
        "epochs_run": int(len(hist)),
        "weights": _weights(run, stopper),
        "best_inner_epoch": stopper.best_epoch if stopper.best_model is not None else None,
        "training_health": guard.health(),
        "collapse_events": guard.events,
        "n_parameters": count_parameters(model),
        "seconds": time.perf_counter() - run.t_start,
        "train_seconds": float(hist["seconds"].sum()),
    }
