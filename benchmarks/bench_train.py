"""Training throughput (images/s) of the default model, several execution settings.

Runs the real training inner loop (``plexus.training.loop._train_epoch``: gather batch,
z-score, augment, forward, -log Dice loss, backward, Adam step, under
``plexus.training.determinism.torch_run_context`` as in training) on a synthetic set
of ~190 images of 64x80 with the default model (base_channels 8, depth 3, batch
16), and compares against a baseline measured in the same run:

* CPU: channels-first fp32 with 1 thread (baseline), 2 threads, channels_last
  (``train_model``'s default format) with 1 and 2 threads, no augmentation (the
  cost of augmenting), bfloat16 autocast (``amp_dtype: bfloat16``; fast only on
  CPUs with native bfloat16, e.g. AVX-512 BF16 or AMX);
* CUDA (when available): fp32, AMP float16 (+GradScaler), AMP bfloat16, AMP +
  channels_last.

Settings are measured round-robin and the fastest epoch of each counts, so that
load from other processes disturbs the ratios as little as possible.

Usage: ``python benchmarks/bench_train.py [--images 192] [--epochs 1] [--rounds 3]``;
under a minute on a 2-core CPU. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from plexus.models import build_model
from plexus.training.determinism import torch_run_context
from plexus.training.loop import _Setup, _train_epoch, epoch_seed
from plexus.training.losses import segmentation_loss
from plexus.training.optim import make_optimizer
from plexus.training.settings import TrainSettings

AUGMENT = {"hflip": 0.5, "vflip": 0.0, "shift": 0.1, "rotate": 10, "shear": 5, "zoom": 0.1}
SETTINGS = TrainSettings.from_config(
    {"arch": "unet", "input_size": [64, 80], "epochs": 1, "base_channels": 8, "depth": 3, "dropout": 0.2,
     "lr": 1e-3, "batch_size": 16, "augment": AUGMENT}
)


def synthetic(n: int, h: int = 64, w: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 110, (n, h, w)).astype(np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    for i in range(0, n, 2):
        r, c = rng.integers(2, h - 22), rng.integers(2, w - 26)
        masks[i, r : r + 20, c : c + 24] = 1
        images[i, r : r + 20, c : c + 24] += 100
    return images, masks


class Runner:
    """One execution setting: a fresh model/optimizer and the data on its device."""

    def __init__(
        self,
        images,
        masks,
        *,
        device="cpu",
        threads=None,
        amp_dtype=None,
        channels_last=False,
        augment=True,
        deterministic=True,
    ):
        self.dev = torch.device(device)
        self.threads, self.deterministic = threads, deterministic
        with self._context():
            torch.manual_seed(0)
            model = build_model(SETTINGS.arch, **SETTINGS.model_kwargs())
            self.model = model.to(self.dev, memory_format=torch.channels_last) if channels_last else model.to(self.dev)
            self.optimizer = make_optimizer(self.model, SETTINGS)
            self.scaler = torch.amp.GradScaler(self.dev.type, enabled=amp_dtype == torch.float16)
            self.setup = _Setup(
                device=self.dev,
                mean=float(images.mean()),
                std=float(images.std()),
                batch_size=SETTINGS.batch_size,
                seg_loss=segmentation_loss(SETTINGS.loss, SETTINGS.dice_reduction),
                presence_weight=0.0,
                two_head=False,
                augment=SETTINGS.augment.to_dict() if augment else None,
                autocast=amp_dtype,
                channels_last=channels_last,
            )
            self.images_t = torch.from_numpy(images).to(self.dev)
            self.masks_t = torch.from_numpy(masks).to(self.dev)
            self.idx_t = torch.arange(len(images), device=self.dev)
        self.epoch = 0

    def _context(self):
        """Threads and determinism flags as ``plexus.training.loop.train_model`` sets them."""
        return torch_run_context(self.dev, self.threads, self.deterministic)

    def epoch_seconds(self) -> float:
        """Wall time of one training epoch (the ``.item()`` at its end syncs CUDA)."""
        with self._context():
            gen = torch.Generator().manual_seed(epoch_seed(0, self.epoch))
            self.epoch += 1
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
            t0 = time.perf_counter()
            _train_epoch(
                self.model, self.optimizer, self.scaler, self.images_t, self.masks_t, self.idx_t, self.setup, gen
            )
            return time.perf_counter() - t0


def run_group(images, masks, configs, rounds, epochs):
    """Images/s per config: one warm-up epoch each, then ``rounds`` round-robin
    passes of ``epochs`` epochs; the best epoch counts (robust to other load)."""
    runners = [(name, Runner(images, masks, **kw)) for name, kw in configs]
    for _, r in runners:
        r.epoch_seconds()  # warm-up
    best = {name: float("inf") for name, _ in runners}
    for _ in range(rounds):
        for name, r in runners:
            for _ in range(epochs):
                best[name] = min(best[name], r.epoch_seconds())
    return [(name, len(images) / best[name]) for name, _ in runners]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per round")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin passes over the settings")
    ap.add_argument("--no-cuda", action="store_true")
    args = ap.parse_args(argv)
    images, masks = synthetic(args.images)

    print(
        f"torch {torch.__version__}; {args.images} images 64x80, unet base 8 depth 3, batch 16; "
        f"best of {args.rounds}x{args.epochs} epochs after 1 warm-up; default threads {torch.get_num_threads()}"
    )
    cpu = [
        ("cpu fp32 channels-first, 1 thread (baseline)", dict(threads=1)),
        ("cpu fp32 channels-first, 2 threads", dict(threads=2)),
        ("cpu fp32 channels_last, 1 thread", dict(threads=1, channels_last=True)),
        ("cpu fp32 channels_last, 2 threads", dict(threads=2, channels_last=True)),
        ("cpu fp32, 1 thread, no augmentation", dict(threads=1, augment=False)),
        ("cpu AMP bfloat16 channels_last, 1 thread", dict(threads=1, channels_last=True, amp_dtype=torch.bfloat16)),
    ]
    rows = run_group(images, masks, [(n, dict(device="cpu", **kw)) for n, kw in cpu], args.rounds, args.epochs)
    baseline = rows[0][1]
    gpu_rows = []
    if torch.cuda.is_available() and not args.no_cuda:
        gpu = [
            ("cuda fp32 (cuda baseline)", dict()),
            ("cuda AMP float16 + GradScaler", dict(amp_dtype=torch.float16)),
            ("cuda AMP bfloat16", dict(amp_dtype=torch.bfloat16)),
            ("cuda AMP float16 + channels_last", dict(amp_dtype=torch.float16, channels_last=True)),
            ("cuda fp32 + channels_last", dict(channels_last=True)),
            (
                "cuda AMP float16 + channels_last, non-deterministic",
                dict(amp_dtype=torch.float16, channels_last=True, deterministic=False),
            ),
            # the data path's share: indexing + on-device augmentation is all a step does besides the network
            ("cuda AMP float16 + channels_last, no augmentation",
             dict(amp_dtype=torch.float16, channels_last=True, augment=False)),
        ]
        gpu_rows = run_group(images, masks, [(n, dict(device="cuda", **kw)) for n, kw in gpu], args.rounds, args.epochs)
        print(f"cuda device: {torch.cuda.get_device_name()}")

    width = max(len(r[0]) for r in rows + gpu_rows)
    print(f"{'setting':<{width}}  {'images/s':>9}  {'vs cpu baseline':>15}  {'vs row 1 of its device':>22}")
    for group in (rows, gpu_rows):
        if not group:
            continue
        ref = group[0][1]
        for name, ips in group:
            print(f"{name:<{width}}  {ips:9.1f}  {ips / baseline:14.2f}x  {ips / ref:21.2f}x")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) {load:.2f} on {os.cpu_count()} cores", end="")
    print("; 2 threads slower than 1: the cores are shared with other work" if rows[1][1] < rows[0][1] else "")
    epoch_s = 190 / baseline
    print(f"baseline: one epoch of 190 images takes {epoch_s:.2f} s of training (1 thread, no validation)")


if __name__ == "__main__":
    main()
