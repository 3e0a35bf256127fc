"""Training of one network on one fold, resumable and deterministic.

:func:`train_model` trains a registered model (:mod:`plexus.model`) on
``images[train_idx]`` and validates on ``images[val_idx]``, writing
``model.pt``, ``history.csv`` and ``train_info.json`` (see ``docs/contracts.md``,
"Trained network").

Determinism and resume
----------------------
Every epoch draws all its randomness from ``epoch_seed(seed, epoch)``: a
``torch.Generator`` seeded with it shuffles the training set and draws the
augmentation, ``torch.manual_seed`` of it drives dropout, and a NumPy generator
seeded with ``(noise seed, seed, epoch)`` picks the noisy samples and their noise.
No random state has to be carried across epochs, so a run restarted from the
checkpoint of epoch ``e`` (model, optimizer and grad-scaler state, history)
reproduces exactly the weights and history (but for the ``seconds`` column) of an
uninterrupted run on the same device with the same thread count.
``torch.use_deterministic_algorithms(True)`` is on while training (``warn_only``
on CUDA, where a few backward kernels have no deterministic variant). The global
torch RNG, thread count and determinism flags are restored on return.

The checkpoint (``checkpoint_path``, written atomically after every epoch) is
keyed by a hash of the settings, the noise settings, the split indices and the
image/mask bytes; a checkpoint with another hash is ignored (and logged). It is
deleted once the outputs are written.

Saved weights: ``model.pt`` holds the weights after the **final** epoch (not the
best validation epoch), so that the result does not depend on the validation
fold beyond reporting; ``history.csv`` has the per-epoch validation numbers.

Data handling: the whole uint8 dataset lives on the device as one tensor and
batches are gathered from it by index; images are converted to float, z-scored
with the training part's mean/std and augmented on the device. On CUDA, training
uses autocast (float16 + GradScaler by default, ``amp_dtype: bfloat16`` optional).
Model and batches use the channels_last memory format by default on every device
(``channels_last: false`` turns it off): on the CPU it measured 1.2-1.5x faster
than channels-first with oneDNN (``benchmarks/bench_train.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from plexus.atomic import atomic_path, write_csv, write_json
from plexus.augment import augment_batch, is_identity
from plexus.device import pick_device
from plexus.losses import get_loss, two_head_loss
from plexus.model import build_model, count_parameters, is_two_head
from plexus.noise import add_gaussian_noise

CHECKPOINT_FORMAT = 1
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice", "seconds"]


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for ``epoch`` of a run seeded ``seed`` (stable across processes)."""
    digest = hashlib.sha256(f"plexus-train|{int(seed)}|{int(epoch)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def segmentation_loss(settings: dict):
    """The configured loss; ``dice_reduction`` "batch" (default) is the seed write-up's
    smooth Dice over the whole batch flattened, "image" one Dice per image, averaged.

    The batch form matters on this data: per image, an all-empty prediction already
    scores 1 on the (majority) empty masks, a local minimum training can fall into.
    """
    name = settings.get("loss", "neg_log_dice")
    loss = get_loss(name)
    if name == "bce":
        return loss
    return functools.partial(loss, per_image=settings.get("dice_reduction", "batch") == "image")


def model_kwargs_from_settings(settings: dict) -> dict:
    """Constructor keyword arguments of the model described by ``settings``."""
    kwargs = {
        "in_channels": 1,
        "base_channels": int(settings.get("base_channels", 32)),
        "depth": int(settings.get("depth", 4)),
        "dropout": float(settings.get("dropout", 0.2)),
        "bilinear": bool(settings.get("bilinear", False)),
    }
    if settings.get("arch") == "unet2head" and settings.get("presence_dropout"):
        kwargs["presence_dropout"] = float(settings["presence_dropout"])
    return kwargs


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.Optimizer:
    """Adam (default), AdamW or SGD (momentum 0.9 unless ``momentum`` is given)."""
    name = str(settings.get("optimizer", "adam")).lower()
    lr = float(settings.get("lr", 1e-3))
    wd = float(settings.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=float(settings.get("momentum", 0.9)), weight_decay=wd
        )
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: adam, adamw, sgd")


def settings_hash(settings: dict, train_idx, val_idx, images, masks, noise=None) -> str:
    """Identity of a training run: settings, noise, split and data bytes."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"format": CHECKPOINT_FORMAT, "settings": settings, "noise": noise}, sort_keys=True, default=str
        ).encode()
    )
    for arr in (np.asarray(train_idx, dtype=np.int64), np.asarray(val_idx, dtype=np.int64)):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    for arr in (images, masks):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


@dataclass
class _Setup:
    """Everything an epoch needs besides model, optimizer and data."""

    device: torch.device
    mean: float
    std: float
    batch_size: int
    seg_loss: Callable
    presence_weight: float
    two_head: bool
    augment: dict | None
    use_amp: bool = False
    amp_dtype: torch.dtype = torch.float16
    channels_last: bool = False


def _batch(images_t, masks_t, idx, setup: _Setup):
    x = images_t.index_select(0, idx).unsqueeze(1).float()
    x = (x - setup.mean) / setup.std
    y = masks_t.index_select(0, idx).unsqueeze(1).float()
    return x, y


def _loss(model, x, y, setup: _Setup):
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(setup.device.type, dtype=setup.amp_dtype, enabled=setup.use_amp):
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
    n = len(train_idx_t)
    perm = torch.randperm(n, generator=generator).to(setup.device)
    order = train_idx_t.index_select(0, perm)
    total = torch.zeros((), dtype=torch.float64, device=setup.device)
    for start in range(0, n, setup.batch_size):
        idx = order[start : start + setup.batch_size]
        x, y = _batch(images_t, masks_t, idx, setup)
        if setup.augment:
            x, y = augment_batch(x, y, setup.augment, generator)
        loss, _, _ = _loss(model, x, y, setup)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(idx)
    return float(total.item() / n)


@torch.no_grad()
def _evaluate(model, images_t, masks_t, val_idx_t, setup: _Setup, presence_gate: float = 0.5) -> tuple[float, float]:
    """Validation loss and mean hard Kaggle Dice (prediction = prob > 0.5).

    For two-head models the prediction is emptied where the presence probability
    is below ``presence_gate`` (as :func:`plexus.predict.predict_probs` does).
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
        pred = (seg.float() > 0).flatten(1)
        if presence is not None:
            pred = pred & (torch.sigmoid(presence.float()) >= presence_gate)[:, None]
        true = y.flatten(1) > 0.5
        inter = (pred & true).sum(1).double()
        denom = (pred.sum(1) + true.sum(1)).double()
        dice = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
        total_dice += dice.sum()
    return float(total_loss.item() / n), float(total_dice.item() / n)


def _validate_inputs(images, masks, train_idx, val_idx, settings):
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    if masks.shape != images.shape:
        raise ValueError(f"masks shape {masks.shape} differs from images shape {images.shape}")
    masks = masks.astype(np.uint8, copy=False)
    train_idx = np.asarray(train_idx, dtype=np.int64).reshape(-1)
    val_idx = np.asarray(val_idx, dtype=np.int64).reshape(-1)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"train_idx and val_idx must both be non-empty (got {len(train_idx)} and {len(val_idx)})")
    n = len(images)
    for name, idx in (("train_idx", train_idx), ("val_idx", val_idx)):
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"{name} out of range for {n} images")
    size = settings.get("input_size")
    if size is not None and tuple(int(s) for s in size) != images.shape[1:]:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} but settings input_size is {size}")
    for key in ("arch", "epochs", "batch_size"):
        if key not in settings:
            raise ValueError(f"settings lack required key {key!r}")
    if int(settings["epochs"]) < 1 or int(settings["batch_size"]) < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {settings['epochs']} and {settings['batch_size']}")
    return images, masks, train_idx, val_idx


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
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


def _amp_config(settings: dict, device: torch.device) -> tuple[bool, torch.dtype]:
    if device.type != "cuda" or not settings.get("amp", True):
        return False, torch.float32
    name = str(settings.get("amp_dtype", "float16"))
    if name not in ("float16", "bfloat16"):
        raise ValueError(f"amp_dtype must be float16 or bfloat16, got {name!r}")
    return True, getattr(torch, name)


def _load_checkpoint(path: Path, expected_hash: str, log) -> dict | None:
    if not path.exists():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file cannot come from our atomic writer, but be safe
        log(f"ignoring unreadable checkpoint {path}: {err}")
        return None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or ck.get("hash") != expected_hash:
        log(f"ignoring checkpoint {path}: it belongs to other settings or data; starting fresh")
        return None
    return ck


def _save_torch(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def train_model(
    images,
    masks,
    train_idx,
    val_idx,
    settings: dict,
    out_dir,
    *,
    checkpoint_path,
    device="auto",
    threads: int | None = None,
    noise: dict | None = None,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train one network; write ``model.pt``, ``history.csv``, ``train_info.json``.

    ``images`` uint8 (N,H,W) and ``masks`` {0,1} uint8 (N,H,W) at the model input
    size; ``settings`` one model entry of the workflow config (keys ``arch``,
    ``epochs``, ``batch_size`` required; ``base_channels``, ``depth``,
    ``dropout``, ``loss``, ``presence_weight``, ``optimizer``, ``lr``,
    ``weight_decay``, ``augment``, ``seed``, ``amp`` (default true, CUDA only),
    ``amp_dtype`` (``float16`` default, or ``bfloat16``), ``channels_last``
    (default true, on CPU too), ``deterministic`` (default true) optional). ``noise``: ``None`` or
    ``{"sigma", "fraction", "seed"}``, Gaussian noise (8-bit units) added before
    z-scoring to that fraction of the training samples, redrawn each epoch.
    ``on_epoch_end(epoch, row)`` is called after each epoch's checkpoint is
    written (a hook for tests and progress reporting). Returns a summary dict.
    """
    t_start = time.perf_counter()
    images, masks, train_idx, val_idx = _validate_inputs(images, masks, train_idx, val_idx, settings)
    out_dir = Path(out_dir)
    checkpoint_path = Path(checkpoint_path)
    dev = pick_device(device)
    epochs = int(settings["epochs"])
    seed = int(settings.get("seed", 0))
    run_hash = settings_hash(settings, train_idx, val_idx, images, masks, noise)

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    deterministic = bool(settings.get("deterministic", True))
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    try:
        if threads:
            torch.set_num_threads(int(threads))
        if deterministic:
            if dev.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
            # NaN-filling every torch.empty is a debugging aid, not needed for determinism (~5% of a CPU epoch)
            torch.utils.deterministic.fill_uninitialized_memory = False
        elif dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        with torch.random.fork_rng(devices=fork_devices):
            summary = _train(
                images,
                masks,
                train_idx,
                val_idx,
                settings,
                out_dir,
                checkpoint_path,
                dev,
                noise,
                log,
                on_epoch_end,
                epochs,
                seed,
                run_hash,
                t_start,
            )
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_det_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_cudnn
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill
    return summary


def _train(
    images,
    masks,
    train_idx,
    val_idx,
    settings,
    out_dir,
    checkpoint_path,
    dev,
    noise,
    log,
    on_epoch_end,
    epochs,
    seed,
    run_hash,
    t_start,
):
    train_images = images[train_idx]
    mean = float(train_images.mean(dtype=np.float64))
    std = float(train_images.std(dtype=np.float64))
    if not std > 0:
        std = 1.0
    arch = settings["arch"]
    kwargs = model_kwargs_from_settings(settings)
    torch.manual_seed(epoch_seed(seed, 0))  # initial weights
    model = build_model(arch, **kwargs)
    use_amp, amp_dtype = _amp_config(settings, dev)
    channels_last = bool(settings.get("channels_last", True))
    model = model.to(dev, memory_format=torch.channels_last) if channels_last else model.to(dev)
    optimizer = make_optimizer(model, settings)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_amp and amp_dtype == torch.float16)
    setup = _Setup(
        device=dev,
        mean=mean,
        std=std,
        batch_size=int(settings["batch_size"]),
        seg_loss=segmentation_loss(settings),
        presence_weight=float(settings.get("presence_weight", 0.5)),
        two_head=is_two_head(model),
        augment=None if is_identity(settings.get("augment")) else dict(settings["augment"]),
        use_amp=use_amp,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
    )

    history: list[dict] = []
    start_epoch = 0
    # temporaries of checkpoint writes interrupted by a kill (see plexus.atomic.atomic_path)
    for stale in checkpoint_path.parent.glob(f".{checkpoint_path.name}.*.tmp{checkpoint_path.suffix}"):
        stale.unlink(missing_ok=True)
    ck = _load_checkpoint(checkpoint_path, run_hash, log)
    if ck is not None:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        history = [dict(r) for r in ck["history"]]
        start_epoch = int(ck["epoch"])
        log(f"resuming from checkpoint {checkpoint_path} after epoch {start_epoch}/{epochs}")
        del ck

    images_t = _to_device(images, dev)
    masks_t = _to_device(masks, dev)
    train_idx_t = torch.from_numpy(train_idx).to(dev)
    val_idx_t = torch.from_numpy(val_idx).to(dev)

    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        es = epoch_seed(seed, epoch)
        torch.manual_seed(es)  # dropout (CPU and CUDA)
        generator = torch.Generator().manual_seed(es)  # shuffling and augmentation
        epoch_images_t = _epoch_images(images, images_t, train_idx, noise, seed, epoch, dev)
        train_loss = _train_epoch(model, optimizer, scaler, epoch_images_t, masks_t, train_idx_t, setup, generator)
        del epoch_images_t
        val_loss, val_dice = _evaluate(model, images_t, masks_t, val_idx_t, setup)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice, "seconds": seconds}
        history.append(row)
        log(
            f"epoch {epoch}/{epochs} train_loss {train_loss:.4f} val_loss {val_loss:.4f} "
            f"val_dice {val_dice:.4f} {seconds:.1f}s"
        )
        _save_torch(
            {
                "format": CHECKPOINT_FORMAT,
                "hash": run_hash,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "history": history,
                "settings": settings,
            },
            checkpoint_path,
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch, dict(row))

    model_pt = {
        "arch": arch,
        "model_kwargs": kwargs,
        "state_dict": _cpu_state(model),
        "mean": mean,
        "std": std,
        "input_size": [int(images.shape[1]), int(images.shape[2])],
        "settings": settings,
        "weights": "final",
        "epochs": epochs,
    }
    hist = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    total_seconds = time.perf_counter() - t_start
    info = {
        "device": str(dev),
        "cuda_device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp": use_amp,
        "amp_dtype": str(amp_dtype).replace("torch.", "") if use_amp else None,
        "channels_last": channels_last,
        "deterministic": bool(settings.get("deterministic", True)),
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_job_partition": os.environ.get("SLURM_JOB_PARTITION"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "epochs": epochs,
        "resumed_from_epoch": start_epoch,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "n_parameters": count_parameters(model),
        "seconds": total_seconds,
        "train_seconds": float(hist["seconds"].sum()),
    }
    write_csv(out_dir / "history.csv", hist)
    write_json(out_dir / "train_info.json", info)
    _save_torch(model_pt, out_dir / "model.pt")
    checkpoint_path.unlink(missing_ok=True)

    last = history[-1]
    best = max(history, key=lambda r: r["val_dice"])
    return {
        "out_dir": str(out_dir),
        "device": str(dev),
        "epochs": epochs,
        "resumed_from_epoch": start_epoch,
        "train_loss": last["train_loss"],
        "val_loss": last["val_loss"],
        "val_dice": last["val_dice"],
        "best_val_dice": best["val_dice"],
        "best_epoch": best["epoch"],
        "seconds": total_seconds,
    }
