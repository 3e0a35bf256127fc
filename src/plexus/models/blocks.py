"""Building blocks shared by the model zoo (U-Net++, Attention U-Net, R2U-Net).

The project conventions of :mod:`plexus.models.unet` hold throughout: batch norm
on the encoder (down) path only, ``Dropout2d`` on every merge of the decoder, and
no op without a deterministic CPU kernel (nor, where it can be avoided, without a
deterministic CUDA backward: no ``interpolate`` in the attention gates, no
adaptive pooling).
"""

from __future__ import annotations

import torch
from torch import nn


def check_divisible(x: torch.Tensor, depth: int) -> None:
    """Raise the project's clear error when H or W is not divisible by ``2**depth``."""
    h, w = x.shape[-2:]
    k = 2**depth
    if h % k or w % k:
        raise ValueError(
            f"input size {h}x{w} is not divisible by 2**depth = {k} (depth {depth}); resize to a multiple of {k}"
        )


def channel_list(base_channels: int, depth: int) -> list[int]:
    """Channels of each level, ``base_channels * 2**level`` for levels 0..depth."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if base_channels < 1:
        raise ValueError(f"base_channels must be >= 1, got {base_channels}")
    return [base_channels * 2**i for i in range(depth + 1)]


def make_upsampler(in_channels: int, bilinear: bool = False) -> nn.Module:
    """x2 upsampling halving the channels, as :class:`plexus.models.unet.Up` does.

    ``bilinear=False``: 2x2 transposed convolution; ``bilinear=True``: bilinear
    interpolation then a 1x1 convolution.
    """
    if bilinear:
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
        )
    return nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)


def merge_dropout(dropout: float) -> nn.Module:
    return nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling written as expand + reshape.

    Its backward is a plain sum, deterministic on CPU and CUDA (unlike
    ``interpolate``'s backward on CUDA).
    """
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class EncoderDecoder(nn.Module):
    """Base of every U-shaped model: ``encode`` -> level features (last = bottleneck), ``decode`` -> logits.

    Subclasses set ``depth``, ``bottleneck_channels``, ``inc`` (the first block), ``downs``
    (pool + block per level), and for the plain decoder ``ups`` (modules called as
    ``up(x, skip)``) and ``outc``; U-Net++ overrides :meth:`decode`.
    """

    depth: int
    bottleneck_channels: int

    def check_input(self, x: torch.Tensor) -> None:
        check_divisible(x, self.depth)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every level; the last one is the bottleneck."""
        self.check_input(x)
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(x, skip)
        return self.outc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a shortcut: ``relu(F(x) + S(x))``.

    With ``batch_norm`` (encoder): conv-BN-ReLU-conv-BN, the shortcut a 1x1 conv + BN
    when the channels change. Without (decoder): conv-ReLU-conv with biases, the
    shortcut a 1x1 conv when the channels change.
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        super().__init__()
        bias = not batch_norm
        body: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)]
        if batch_norm:
            body.append(nn.BatchNorm2d(out_channels))
        body += [nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)]
        if batch_norm:
            body.append(nn.BatchNorm2d(out_channels))
        self.body = nn.Sequential(*body)
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            short: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, bias=bias)]
            if batch_norm:
                short.append(nn.BatchNorm2d(out_channels))
            self.shortcut = nn.Sequential(*short)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class RecurrentConv(nn.Module):
    """Recurrent convolutional layer (Alom et al. 2018, after Liang & Hu 2015).

    One 3x3 conv (+BN on the encoder) + ReLU, its weights shared over time:
    ``h_0 = f(x)``, ``h_t = f(x + h_{t-1})`` for ``t = 1..recurrence``.
    """

    def __init__(self, channels: int, recurrence: int = 2, batch_norm: bool = True):
        super().__init__()
        if recurrence < 1:
            raise ValueError(f"recurrence must be >= 1, got {recurrence}")
        self.recurrence = recurrence
        layers: list[nn.Module] = [nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(nn.ReLU(inplace=True))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        for _ in range(self.recurrence):
            h = self.conv(x + h)
        return h


class RRCNNBlock(nn.Module):
    """Recurrent residual block of R2U-Net: a 1x1 conv to ``out_channels``, then two
    recurrent conv layers, with the 1x1 output added back (residual)."""

    def __init__(self, in_channels: int, out_channels: int, recurrence: int = 2, batch_norm: bool = True):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.rcnn = nn.Sequential(
            RecurrentConv(out_channels, recurrence, batch_norm),
            RecurrentConv(out_channels, recurrence, batch_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x + self.rcnn(x)


class AttentionGate(nn.Module):
    """Additive attention gate of Oktay et al. 2018 ("grid attention").

    ``x`` is the skip connection at resolution H (``skip_channels``), ``g`` the
    gating signal from the next coarser decoder level at H/2 (``gate_channels``).
    ``theta_x`` is a 2x2 stride-2 conv taking ``x`` to the gate's grid, ``phi_g`` a
    1x1 conv; ``alpha = sigmoid(psi(relu(theta_x + phi_g)))`` is upsampled (nearest,
    deterministic) to H and multiplies ``x``; a 1x1 conv ``W`` follows (the paper's
    BN after ``W`` is left out: the decoder carries no batch norm in this project).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(1, skip_channels // 2)
        self.theta_x = nn.Conv2d(skip_channels, inter, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter, kernel_size=1)
        self.psi = nn.Conv2d(inter, 1, kernel_size=1)
        self.out = nn.Conv2d(skip_channels, skip_channels, kernel_size=1)

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients (B, 1, H, W) in (0, 1)."""
        f = torch.relu(self.theta_x(x) + self.phi_g(g))
        return upsample_nearest2x(torch.sigmoid(self.psi(f)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.out(x * self.attention(x, g))
