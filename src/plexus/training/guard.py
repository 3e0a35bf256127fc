"""What watches a training run: the collapse guard, early stopping and the inner validation split.

Collapse guard (:class:`CollapseGuard`): on the **training** loss only, so it never reads a
validation label. An epoch counts towards a collapse when its training loss has given back more
than ``collapse_share`` of the progress made since the first epoch: loss > best + share x (first -
best), with ``first`` the first epoch's training loss and ``best`` the lowest so far. The test is
on the share of progress lost, not on a ratio to the best loss: near convergence the best loss is
small and ordinary epoch-to-epoch noise is many times it, while a collapse loses most of what was
learnt (issue 26). ``collapse_epochs`` such epochs in a row make a collapse, handled per
``on_collapse`` (see the schema). The guard arms once the run has made progress: the best loss at
least ``collapse_min_progress`` of the first below it; before that there is nothing to lose, and a
slow start that hovers near its first loss is no collapse. For ``recover`` the
guard keeps a copy of the weights, optimizer and grad-scaler state of the best-training-loss
epoch; a recovery loads it and multiplies the learning rate by ``collapse_lr_factor``. The
guard's whole state (copy included) goes into every checkpoint, so a resumed run acts as an
uninterrupted one. It only copies state and never touches the computation, so a run that does
not collapse is bit for bit the same with the guard on or off.

Early stopping (:class:`EarlyStopper`): on the inner-validation loss, keeping the weights of
its best epoch.

Inner split (:func:`inner_split`): a subject-grouped share of a fold's training part, never
trained on, that the per-epoch validation uses instead of the out-of-fold images.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from plexus.training.settings import TrainSettings


def _copy_state(obj) -> dict:
    """A detached CPU copy of a module's, optimizer's or scaler's state dict."""
    return copy.deepcopy({k: _to_cpu(v) for k, v in obj.state_dict().items()})


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


@dataclass
class Collapse:
    """A detected collapse: the epochs above the threshold and the best epoch before them."""

    epochs: list[int]
    losses: list[float]
    best_epoch: int
    best_loss: float

    first_loss: float
    share: float

    @property
    def threshold(self) -> float:
        return collapse_threshold(self.first_loss, self.best_loss, self.share)

    def describe(self) -> str:
        losses = ", ".join(f"{v:.4g}" for v in self.losses)
        return (f"training loss gave back more than {self.share:g} of its progress (first epoch {self.first_loss:.4g}, "
                f"best {self.best_loss:.4g} at epoch {self.best_epoch}, threshold {self.threshold:.4g}) "
                f"for epochs {self.epochs[0]}-{self.epochs[-1]} ({losses})")


def collapse_threshold(first_loss: float, best_loss: float, share: float) -> float:
    """The training loss above which an epoch counts towards a collapse: ``best + share x (first - best)``."""
    return best_loss + share * (first_loss - best_loss)


@dataclass
class CollapseGuard:
    """The collapse guard's state; see the module docstring."""

    settings: TrainSettings
    first_loss: float = math.nan  # the first epoch's training loss: the progress is measured from it
    best_loss: float = math.inf
    best_epoch: int = 0
    streak: list[tuple[int, float]] = field(default_factory=list)  # (epoch, loss) above the threshold
    recoveries: int = 0
    lr_scale: float = 1.0
    events: list[dict] = field(default_factory=list)
    snapshot: dict | None = None  # recover: weights, optimizer, scaler and lr_scale of best_epoch

    @property
    def enabled(self) -> bool:
        return self.settings.on_collapse != "none"

    def observe(self, epoch: int, train_loss: float, model, optimizer, scaler) -> Collapse | None:
        """Record epoch ``epoch``'s training loss; the collapse it completes, if any."""
        if not self.enabled:
            return None
        if math.isnan(self.first_loss):
            self.first_loss = train_loss
        if train_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.streak = train_loss, epoch, []
            if self.settings.on_collapse == "recover":
                self.snapshot = {"model": _copy_state(model), "optimizer": _copy_state(optimizer),
                                 "scaler": _copy_state(scaler), "lr_scale": self.lr_scale}
            return None
        share = self.settings.collapse_share
        armed = self.first_loss - self.best_loss >= self.settings.collapse_min_progress * abs(self.first_loss)
        if not armed or train_loss <= collapse_threshold(self.first_loss, self.best_loss, share):
            self.streak = []
            return None
        self.streak.append((epoch, train_loss))
        if len(self.streak) != self.settings.collapse_epochs:  # one event per run of bad epochs
            return None
        return Collapse([e for e, _ in self.streak], [v for _, v in self.streak], self.best_epoch, self.best_loss,
                        self.first_loss, share)

    def record(self, collapse: Collapse, action: str) -> dict:
        event = {"epoch": collapse.epochs[-1], "first_epoch": collapse.epochs[0], "best_epoch": collapse.best_epoch,
                 "best_loss": collapse.best_loss, "first_loss": collapse.first_loss,
                 "threshold": collapse.threshold, "losses": collapse.losses, "action": action,
                 "lr_scale": self.lr_scale}
        self.events.append(event)
        return event

    def can_recover(self) -> bool:
        return self.recoveries < self.settings.max_recoveries and self.snapshot is not None

    def recover(self, model, optimizer, scaler, collapse: Collapse) -> dict:
        """Load the best-training-loss state, lower the learning rate; the recorded event."""
        snap = self.snapshot
        model.load_state_dict(snap["model"])
        optimizer.load_state_dict(snap["optimizer"])
        if snap["scaler"]:
            scaler.load_state_dict(snap["scaler"])
        self.recoveries += 1
        self.lr_scale *= self.settings.collapse_lr_factor
        # the optimizer's own rate (the plateau scheduler's) is the snapshot's, lowered to today's scale
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_scale / snap["lr_scale"]
        self.streak = []
        return self.record(collapse, "recovered")

    def health(self) -> str:
        """``ok``, ``recovered Nx (epoch E, ...)``, ``collapsed (warned, epoch E)`` or ``unguarded``."""
        if not self.enabled:
            return "unguarded"
        if not self.events:
            return "ok"
        recovered = [e["epoch"] for e in self.events if e["action"] == "recovered"]
        warned = [e["epoch"] for e in self.events if e["action"] == "warned"]
        if warned:
            return f"collapsed (warned, epoch {', '.join(map(str, warned))})"
        return f"recovered {len(recovered)}x (epoch {', '.join(map(str, recovered))})"

    def state_dict(self) -> dict:
        return {"first_loss": self.first_loss, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                "streak": [list(s) for s in self.streak],
                "recoveries": self.recoveries, "lr_scale": self.lr_scale, "events": copy.deepcopy(self.events),
                "snapshot": self.snapshot}

    def load_state_dict(self, state: dict) -> None:
        self.first_loss = float(state["first_loss"])
        self.best_loss, self.best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        self.streak = [(int(e), float(v)) for e, v in state["streak"]]
        self.recoveries, self.lr_scale = int(state["recoveries"]), float(state["lr_scale"])
        self.events = [dict(e) for e in state["events"]]
        self.snapshot = state["snapshot"]


@dataclass
class EarlyStopper:
    """Early stopping on the inner-validation loss (``patience`` 0: off, final weights)."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    since_best: int = 0
    stopped: bool = False
    best_model: dict | None = None

    def observe(self, epoch: int, val_loss: float, model) -> None:
        if not self.patience:
            return
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = val_loss, epoch, 0
            self.best_model = _copy_state(model)
            return
        self.since_best += 1
        self.stopped = self.since_best >= self.patience

    def state_dict(self) -> dict:
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "since_best": self.since_best,
                "stopped": self.stopped, "best_model": self.best_model}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        self.since_best, self.stopped = int(state["since_best"]), bool(state["stopped"])
        self.best_model = state["best_model"]


def inner_split(train_idx: np.ndarray, subjects: np.ndarray | None, share: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_idx, inner_idx)``: ``train_idx`` without and with a held-out share of its subjects.

    ``subjects`` (one per image of the whole array, or None: each image its own group) group
    the images (a training part of one subject, as a small training-size subset can be, is
    split by image: the inner images then share the subject of the fitted ones);
    ``round(share * n_subjects)`` of them (at least one, never all) are drawn with
    ``seed``, so the split is a function of the training part, the subjects and the seed.
    """
    groups = (np.asarray(train_idx) if subjects is None else np.asarray(subjects)[train_idx]).astype(str)
    names = np.unique(groups)
    if len(names) < 2:  # one subject (a small training-size subset): hold out some of its images
        groups = np.asarray(train_idx).astype(str)
        names = np.unique(groups)
    if len(names) < 2:
        raise ValueError(f"validation inner needs at least 2 training images, got {len(names)}; "
                         "use validation: oof")
    k = min(len(names) - 1, max(1, int(round(share * len(names)))))
    digest = hashlib.sha256(f"plexus-inner|{int(seed)}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    held = np.isin(groups, names[rng.permutation(len(names))[:k]])
    return np.asarray(train_idx)[~held], np.asarray(train_idx)[held]
