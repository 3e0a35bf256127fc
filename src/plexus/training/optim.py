"""Optimizers by config name (the schema's ``optimizer`` enum lists exactly these)."""

from __future__ import annotations

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


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    """The learning-rate scheduler of ``settings.scheduler`` (None for ``none``).

    ``plateau``: ReduceLROnPlateau on the validation loss, stepped once per epoch.
    """
    if settings.scheduler == "none":
        return None
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience
        )
    raise ValueError(f"unknown scheduler {settings.scheduler!r}; valid: none, plateau")
