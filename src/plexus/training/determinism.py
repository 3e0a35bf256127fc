"""The torch process state of one training run, set on entry and restored on exit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_run_context(device: torch.device, threads: int | None = None, deterministic: bool = True) -> Iterator[None]:
    """Threads, determinism flags and the global RNG for a run on ``device``.

    ``threads``: intra-op thread count (unchanged when ``None``/0).
    ``deterministic``: ``torch.use_deterministic_algorithms(True)`` (``warn_only`` on
    CUDA, where a few backward kernels have no deterministic variant), cuDNN
    deterministic and not benchmarking, and no NaN-filling of ``torch.empty`` (a
    debugging aid deterministic mode turns on, ~5% of a CPU epoch, not needed for
    reproducibility). ``deterministic=False`` on CUDA turns cuDNN benchmarking on.
    The global torch RNG (CPU, and ``device`` on CUDA) is forked, so seeding inside
    does not leak out. Everything is restored on exit, also on an exception.
    """
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    cuda = device.type == "cuda"
    try:
        if threads:
            torch.set_num_threads(int(threads))
        if deterministic:
            if cuda:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=cuda)
            torch.utils.deterministic.fill_uninitialized_memory = False
        elif cuda:
            torch.backends.cudnn.benchmark = True
        with torch.random.fork_rng(devices=[device.index or 0] if cuda else []):
            yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_det_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_cudnn
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill
