"""The per-epoch training checkpoint: run identity, atomic save, load and restore.

The checkpoint (written atomically after every finite epoch) holds the model,
optimizer and grad-scaler state, the history so far and the state of the collapse guard and
early stopping (``extra``, :mod:`plexus.training.guard`), keyed by :func:`run_hash`
of the settings, the noise settings, the split indices and the image/mask bytes;
a checkpoint with another hash is ignored (and logged).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from plexus.io.atomic import atomic_path

CHECKPOINT_FORMAT = 2  # 2: with the collapse guard's and early stopping's state


def run_hash(settings: dict, train_idx, val_idx, images, masks, noise=None) -> str:
    """Identity of a training run: settings (a plain dict), noise, split and data bytes."""
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


def save_torch(obj, path: Path) -> None:
    """``torch.save`` through a temporary renamed into place (never a partial file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def cpu_state(model: torch.nn.Module) -> dict:
    """The model's state dict as contiguous CPU tensors."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def remove_stale_temporaries(path: Path) -> None:
    """Temporaries of checkpoint writes interrupted by a kill (see :func:`plexus.io.atomic.atomic_path`)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp{path.suffix}"):
        stale.unlink(missing_ok=True)


def save_checkpoint(path: Path, *, run_hash: str, epoch: int, model, optimizer, scaler, history, settings: dict,
                    scheduler=None, extra: dict | None = None):
    """Write the checkpoint of ``epoch``; ``extra`` holds more plain state (its keys are top-level keys)."""
    extra = dict(extra or {})
    if scheduler is not None:
        extra["scheduler"] = scheduler.state_dict()
    save_torch(
        {
            **extra,
            "format": CHECKPOINT_FORMAT,
            "hash": run_hash,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "history": history,
            "settings": settings,
        },
        path,
    )


def load_checkpoint(path: Path, expected_hash: str, log: Callable[[str], None]) -> dict | None:
    """The checkpoint at ``path`` if it belongs to this run, else ``None`` (logged)."""
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


def restore(ck: dict, model, optimizer, scaler, scheduler=None) -> tuple[list[dict], int]:
    """Load ``ck`` into model, optimizer, scaler (and scheduler); returns ``(history, epoch)``."""
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    if scheduler is not None and ck.get("scheduler"):
        scheduler.load_state_dict(ck["scheduler"])
    if ck.get("scaler"):
        scaler.load_state_dict(ck["scaler"])
    return [dict(r) for r in ck["history"]], int(ck["epoch"])
