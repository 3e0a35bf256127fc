"""Optimizers by config name (the schema's ``optimizer`` enum lists exactly these) and learning-rate schedules.

Schedules ``poly`` and ``cosine`` are functions of the epoch alone (:func:`lr_factor`), set
at the start of every epoch, so a resumed run needs no scheduler state. ``poly`` is
nnU-Net's ``lr * (1 - i / epochs) ** 0.9`` at 0-based epoch ``i`` (Isensee et al., "nnU-Net",
Nature Methods 2021; ``PolyLRScheduler`` of the nnU-Net code); ``cosine`` is SGDR's single
cycle ``lr * (1 + cos(pi * i / epochs)) / 2`` (Loshchilov and Hutter, ICLR 2017). Both
start with ``warmup_epochs`` of linear warm-up (Goyal et al. 2017): epoch ``e`` (1-based) of
the warm-up runs at ``lr * e / (warmup_epochs + 1)``, so no epoch starts at a zero rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from plexus.training.settings import TrainSettings


def _adam(params: Iterable, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


def _adamw(params: Iterable, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)


def _sgd(params: Iterable, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)


def _rmsprop(params: Iterable, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)


#: Optimizer constructors by config name; each is ``ctor(parameters, settings)``.
OPTIMIZERS: dict[str, Callable[[Iterable, TrainSettings], torch.optim.Optimizer]] = {
    "adam": _adam,
    "adamw": _adamw,
    "sgd": _sgd,
    "rmsprop": _rmsprop,
}


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer ``settings.optimizer`` over ``model``'s parameters."""
    try:
        ctor = OPTIMIZERS[settings.optimizer]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {settings.optimizer!r}; valid optimizers: {', '.join(sorted(OPTIMIZERS))}"
        ) from None
    return ctor(model.parameters(), settings)


#: Schedules set per epoch by :func:`lr_factor`; ``plateau`` is a stateful torch scheduler.
EPOCH_SCHEDULES = ("none", "poly", "cosine")

POLY_EXPONENT = 0.9  # nnU-Net's


def lr_factor(settings: TrainSettings, epoch: int) -> float:
    """The multiple of ``settings.lr`` that epoch ``epoch`` (1-based) of an epoch schedule trains at."""
    if settings.scheduler == "none":
        return 1.0
    i, n = epoch - 1, settings.epochs
    if settings.scheduler == "poly":
        decay = (1 - i / n) ** POLY_EXPONENT
    elif settings.scheduler == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * i / n))
    else:
        raise ValueError(f"{settings.scheduler!r} is not an epoch schedule; valid: {', '.join(EPOCH_SCHEDULES)}")
    warm = settings.warmup_epochs
    return decay * (epoch / (warm + 1) if epoch <= warm else 1.0)


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    """The stateful learning-rate scheduler of ``settings.scheduler``; None for the epoch schedules.

    ``plateau``: ReduceLROnPlateau on the validation loss, stepped once per epoch.
    ``none``, ``poly`` and ``cosine`` are set per epoch from :func:`lr_factor`.
    """
    if settings.scheduler in EPOCH_SCHEDULES:
        return None
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience
        )
    raise ValueError(f"unknown scheduler {settings.scheduler!r}; valid: none, plateau, poly, cosine")
