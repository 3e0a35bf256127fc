"""Training throughput (images/s) of our U-Net against a peer: MONAI's BasicUNet.

The peer is ``monai.networks.nets.BasicUNet(spatial_dims=2, in_channels=1,
out_channels=1, features=...)`` with its defaults otherwise (instance norm and
LeakyReLU after every convolution, no dropout, transposed-convolution upsampling).
``--features`` sets its widths; the default ``8,8,16,32,64,8`` is MONAI's default
``32,32,64,128,256,32`` at a quarter of the width. Ours is ``unet`` from the model
registry at ``--depth`` (default 3, the default config's) with the base width whose
parameter count is closest to the peer's, and its default dropout of 0.2.

Both train the same way: one fixed batch of ``--batch`` z-scored random images and
random masks, our default loss (-log smooth Dice over the batch), Adam (lr 1e-3),
fp32, ``--threads`` intra-op threads, deterministic algorithms on (as
``plexus.training.loop.train_model`` runs). No data loading and no augmentation:
the timed step is forward, loss, backward, optimizer step. Ours runs in its
default training memory format, channels_last (``channels_last: true``), and, for
reference, channels-first; the peer in both. Every setting is timed round-robin,
``--steps`` steps per round, best round of ``--repeats`` after ``--warmup`` steps.

MONAI is an optional extra, for this benchmark only:

    .venv/bin/pip install -e '.[bench]'    # or: .venv/bin/pip install --no-deps monai==1.6.1
    .venv/bin/python benchmarks/bench_peer.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from plexus.models import build_model, count_parameters
from plexus.training.determinism import torch_run_context
from plexus.training.losses import segmentation_loss
from plexus.training.optim import make_optimizer
from plexus.training.settings import TrainSettings

try:
    import monai
    from monai.networks.nets import BasicUNet
except ImportError:
    monai = BasicUNet = None

CPU = torch.device("cpu")


def settings(base: int, depth: int) -> TrainSettings:
    """Our model entry (defaults from the schema: -log Dice over the batch, Adam, lr 1e-3)."""
    return TrainSettings.from_config(
        {"arch": "unet", "input_size": [64, 80], "epochs": 1, "base_channels": base, "depth": depth, "dropout": 0.2}
    )


def ours(base: int, depth: int) -> torch.nn.Module:
    s = settings(base, depth)
    return build_model(s.arch, **s.model_kwargs())


def peer(features) -> torch.nn.Module:
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(features))


def matching_base(n_params: int, depth: int) -> int:
    """Our base width whose parameter count is closest to ``n_params``."""
    best, base = None, 1
    while True:
        n = count_parameters(ours(base, depth))
        if best is None or abs(n - n_params) < best[0]:
            best = (abs(n - n_params), base)
        if n > n_params:
            return best[1]
        base += 1


def forward_gflop(model: torch.nn.Module, h: int, w: int) -> float:
    """Forward FLOPs of one image as torch's FlopCounterMode counts them (convolutions; not norms,
    activations, pooling), in GFLOP. The GFLOP/s column is this times images/s: forward only."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 1, h, w))
    return counter.get_total_flops() / 1e9


class Runner:
    """One model in one memory format, its optimizer and a fixed batch."""

    def __init__(self, make, x, y, channels_last: bool, threads: int, loss, train_settings: TrainSettings):
        self.threads, self.loss = threads, loss
        with self._context():
            torch.manual_seed(0)
            model = make()
            self.model = model.to(memory_format=torch.channels_last) if channels_last else model
            self.optimizer = make_optimizer(self.model, train_settings)  # Adam, lr 1e-3, as ours trains
            self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            self.y = y

    def _context(self):
        return torch_run_context(CPU, self.threads, deterministic=True)

    def seconds(self, steps: int) -> float:
        with self._context():
            self.model.train()
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = self.loss(self.model(self.x), self.y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
            return time.perf_counter() - t0


def batch(n: int, h: int, w: int, seed: int = 0):
    """z-scored random images and masks with a rectangle in every other image."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, h, w, generator=gen)
    y = torch.zeros(n, 1, h, w)
    for i in range(0, n, 2):
        r = int(torch.randint(0, h // 2, (1,), generator=gen))
        c = int(torch.randint(0, w // 2, (1,), generator=gen))
        y[i, 0, r : r + h // 3, c : c + w // 3] = 1
    return x, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x80,128x160")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every setting (train jobs use 1)")
    ap.add_argument("--features", default="8,8,16,32,64,8", help="BasicUNet's six widths")
    ap.add_argument("--depth", type=int, default=3, help="our U-Net's depth (poolings)")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    ap.add_argument("--repeats", type=int, default=5, help="round-robin rounds; the best counts")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps of each setting first")
    args = ap.parse_args(argv)
    if BasicUNet is None:
        print("bench_peer.py needs MONAI, the optional extra 'bench': .venv/bin/pip install -e '.[bench]'",
              file=sys.stderr)
        sys.exit(2)
    features = [int(f) for f in args.features.split(",")]
    n_peer = count_parameters(peer(features))
    base = matching_base(n_peer, args.depth)
    n_ours = count_parameters(ours(base, args.depth))
    ours_settings = settings(base, args.depth)
    loss = segmentation_loss(ours_settings.loss, ours_settings.dice_reduction)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    print(" ".join(["$ .venv/bin/python benchmarks/bench_peer.py", *sys.argv[1:]]))
    print(f"torch {torch.__version__}, monai {monai.__version__}; batch {args.batch}, {args.threads} thread(s), fp32, "
          f"Adam, -log Dice; best of {args.repeats} rounds x {args.steps} steps after {args.warmup} warm-up steps")
    print(f"ours: plexus unet base {base} depth {args.depth} dropout 0.2, {n_ours:,} parameters")
    print(f"peer: monai BasicUNet features {tuple(features)}, {n_peer:,} parameters "
          f"(ours / peer {n_ours / n_peer:.2f})")
    configs = [
        ("ours, channels_last (its default)", lambda: ours(base, args.depth), True),
        ("ours, channels-first", lambda: ours(base, args.depth), False),
        ("peer, channels-first", lambda: peer(features), False),
        ("peer, channels_last", lambda: peer(features), True),
    ]
    load_start = os.getloadavg()[0]
    print(f"{'size':<9}{'setting':<36}{'GFLOP/img':>10}{'images/s':>10}{'GFLOP/s':>9}{'ours (default) / this':>23}")
    summary = []
    for h, w in sizes:
        x, y = batch(args.batch, h, w)
        runners = [(name, Runner(make, x, y, cl, args.threads, loss, ours_settings)) for name, make, cl in configs]
        for _, r in runners:
            r.seconds(args.warmup)
        best = {name: float("inf") for name, _ in runners}
        for k in range(args.repeats):
            for name, r in runners[k % len(runners):] + runners[:k % len(runners)]:  # rotate the order each round
                best[name] = min(best[name], r.seconds(args.steps))
        ips = {name: args.batch * args.steps / best[name] for name in best}
        ours_ips = ips[configs[0][0]]
        size = f"{h}x{w}"
        for name, make, _ in configs:
            flop = forward_gflop(make(), h, w)
            ratio = "" if name == configs[0][0] else f"{ours_ips / ips[name]:.2f}x"
            print(f"{size:<9}{name:<36}{flop:>10.3f}{ips[name]:>10.1f}{flop * ips[name]:>9.1f}{ratio:>23}")
        peer_best = max(ips["peer, channels-first"], ips["peer, channels_last"])
        summary.append(f"{size} {ours_ips / peer_best:.2f}x")
    print(f"ours (channels_last) / the peer's faster format: {', '.join(summary)}")
    print(f"load average (1 min) {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
