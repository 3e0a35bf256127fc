"""U-Net models for nerve segmentation, with a small timm-style registry.

The building blocks follow milesial/Pytorch-UNet (``DoubleConv``, ``Down``, ``Up``,
``OutConv``) with the two tweaks of the Kaggle write-up this project reproduces:

* batch normalisation on the down (encoder) path only: conv-BN-ReLU x2;
* dropout on every merge of the up path: upsample, concatenate the skip
  connection, ``Dropout2d``, then conv-ReLU x2 (no batch norm on the up path).

:class:`TwoHeadUNet` adds a nerve-presence classifier on the bottleneck (global
average pool -> linear -> one logit), as in the "U-Net with 2 heads" write-up; its
``forward`` returns ``(seg_logits, presence_logits)``.

Models are built by name through :func:`build_model` (archs ``"unet"`` and
``"unet2head"``); new architectures register with :func:`register_model`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

#: Registry of model constructors by architecture name.
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Class/function decorator adding a model constructor to :data:`MODELS`."""

    def decorator(fn):
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = fn
        return fn

    return decorator


def build_model(arch: str, **kwargs) -> nn.Module:
    """Instantiate the registered architecture ``arch`` with ``kwargs``."""
    try:
        ctor = MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown model arch {arch!r}; known archs: {', '.join(sorted(MODELS))}") from None
    return ctor(**kwargs)


class DoubleConv(nn.Module):
    """(3x3 conv -> [BN] -> ReLU) x 2. With batch norm the convs have no bias."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Down(nn.Module):
    """2x2 max pool then a batch-normed :class:`DoubleConv` (the down path)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels, batch_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """Upsample x2, merge (concatenate) the skip, Dropout2d, conv-ReLU x2 (no BN).

    ``bilinear=False`` upsamples with a 2x2 transposed convolution halving the
    channels; ``bilinear=True`` with bilinear interpolation followed by a 1x1 conv
    halving the channels (the two give the same tensor shapes).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, bilinear: bool = False):
        super().__init__()
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, batch_norm=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        x = torch.cat([skip, x], dim=1)
        return self.conv(self.drop(x))


class OutConv(nn.Module):
    """1x1 convolution to the output logits."""

    def __init__(self, in_channels: int, out_channels: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@register_model("unet")
class UNet(nn.Module):
    """U-Net with ``depth`` poolings; channels ``base_channels * 2**level``.

    Input (B, in_channels, H, W) with H and W divisible by ``2**depth``; output
    segmentation logits (B, 1, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        dropout: float = 0.2,
        bilinear: bool = False,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, chans[0], batch_norm=True)
        self.downs = nn.ModuleList(Down(chans[i], chans[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            Up(chans[i + 1], chans[i], dropout=dropout, bilinear=bilinear) for i in reversed(range(depth))
        )
        self.outc = OutConv(chans[0], 1)
        self.bottleneck_channels = chans[-1]

    def check_input(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        k = 2**self.depth
        if h % k or w % k:
            raise ValueError(
                f"input size {h}x{w} is not divisible by 2**depth = {k} (depth {self.depth}); "
                f"resize to a multiple of {k}"
            )

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


@register_model("unet2head")
class TwoHeadUNet(UNet):
    """:class:`UNet` plus a nerve-presence head on the bottleneck.

    ``forward`` returns ``(seg_logits (B,1,H,W), presence_logits (B,))``. The
    presence head is a global average pool (written as a mean, which is
    deterministic on CUDA unlike ``AdaptiveAvgPool2d``'s backward) and a linear
    layer to one logit.
    """

    def __init__(self, *args, presence_dropout: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.presence_drop = nn.Dropout(presence_dropout) if presence_dropout > 0 else nn.Identity()
        self.presence = nn.Linear(self.bottleneck_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encode(x)
        pooled = feats[-1].float().mean(dim=(2, 3))
        presence = self.presence(self.presence_drop(pooled)).squeeze(1)
        return self.decode(feats), presence


def is_two_head(model: nn.Module) -> bool:
    """True when ``model`` returns ``(seg_logits, presence_logits)``."""
    return isinstance(model, TwoHeadUNet)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
