"""Patches: sliding-window prediction with weighted blending.

A model entry with ``patch_size`` trains on random ``patch_size`` crops of its
``input_size`` images (:func:`plexus.training.augment.random_crops`) and predicts each image by sliding a
window of that size over it (:func:`window_starts`), the windows overlapping by
``window_overlap`` of their size. Overlapping predictions are averaged with a Gaussian
weight that is largest at a window's centre (:func:`gaussian_weights`, sigma 1/8 of the
window as in nnU-Net), so that each pixel is mostly decided by windows that see its
surroundings, and the seams of the window grid do not show.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` pixels covering ``length``, overlapping by at least ``overlap``.

    The first window starts at 0 and the last ends at ``length``; the others are evenly
    spaced between them, with a step of at most ``window * (1 - overlap)`` pixels.
    """
    if window <= 0 or not 0 <= overlap < 1:
        raise ValueError(f"window must be > 0 and overlap in [0, 1), got {window} and {overlap}")
    if length <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    count = int(np.ceil((length - window) / step)) + 1
    return [int(round(s)) for s in np.linspace(0, length - window, count)]


def gaussian_weights(size: tuple[int, int], sigma_scale: float = 0.125) -> torch.Tensor:
    """A (h, w) float32 Gaussian peaking at the centre (1 there for odd sides).

    Sigma is ``sigma_scale`` of each side; weights never fall below 1e-3.
    """
    axes = []
    for n in size:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        axes.append(torch.exp(-0.5 * (x / max(sigma_scale * n, 1e-6)) ** 2))
    return (axes[0][:, None] * axes[1][None, :]).clamp_(min=1e-3)


def sliding_window(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: tuple[int, int],
                   overlap: float) -> torch.Tensor:
    """Blend ``forward`` over windows of ``size`` of ``x`` (B,C,H,W); returns (B,K,H,W).

    ``forward`` maps a (B,C,h,w) batch of windows to (B,K,h,w) probabilities. Every pixel's
    result is the Gaussian-weighted mean of the windows that contain it.
    """
    h, w = size
    big_h, big_w = x.shape[-2:]
    weights = gaussian_weights(size).to(x.device)
    total, norm = None, torch.zeros(big_h, big_w, device=x.device)
    for top in window_starts(big_h, h, overlap):
        for left in window_starts(big_w, w, overlap):
            out = forward(x[:, :, top:top + h, left:left + w].contiguous(memory_format=torch.channels_last))
            if total is None:
                total = torch.zeros(x.shape[0], out.shape[1], big_h, big_w, device=x.device)
            total[:, :, top:top + h, left:left + w] += out.float() * weights
            norm[top:top + h, left:left + w] += weights
    return total / norm
