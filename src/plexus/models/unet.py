"""U-Net models for nerve segmentation, registered by name (:mod:`plexus.models.registry`).

The building blocks follow milesial/Pytorch-UNet (``DoubleConv``, ``Down``, ``Up``,
``OutConv``) with the two tweaks of the Kaggle write-up this project reproduces:

* batch normalisation on the down (encoder) path only: conv-BN-ReLU x2;
* dropout on every merge of the up path: upsample, concatenate the skip
  connection, ``Dropout2d``, then conv-ReLU x2 (no batch norm on the up path).

:class:`TwoHeadUNet` adds a nerve-presence classifier on the bottleneck (global
average pool -> linear -> one logit), as in the "U-Net with 2 heads" write-up; its
``forward`` returns ``(seg_logits, presence_logits)``.

Both register by name (``"unet"``, ``"unet2head"``) in :mod:`plexus.models.registry`.
"""

from __future__ import annotations

import torch
from torch import nn

from plexus.models.blocks import EncoderDecoder
from plexus.models.registry import register_model


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
class UNet(EncoderDecoder):
    """U-Net with ``depth`` poolings; channels ``base_channels * 2**level``.

    Input (B, in_channels, H, W) with H and W divisible by ``2**depth``; output
    segmentation logits (B, out_channels, H, W): one for a binary mask, one per class
    for a multi-class softmax.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        dropout: float = 0.2,
        bilinear: bool = False,
        out_channels: int = 1,
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
        self.outc = OutConv(chans[0], out_channels)
        self.bottleneck_channels = chans[-1]


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
    """True when ``model`` returns ``(seg_logits, presence_logits)``: a :class:`TwoHeadUNet`,
    or a model marked ``two_head = True`` (:class:`plexus.models.presence.WithPresenceHead`)."""
    return isinstance(model, TwoHeadUNet) or bool(getattr(model, "two_head", False))
