"""Attention U-Net (Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas").

A U-Net whose skip connections pass through additive attention gates
(:class:`plexus.models.blocks.AttentionGate`): at each decoder level the gating
signal is the coarser decoder feature (the bottleneck for the deepest gate),
taken *before* its upsampling as in the paper's grid attention; the gated skip
is concatenated with the upsampled feature, ``Dropout2d``, then conv-ReLU x2.

``attention_resunet`` is the residual variant: every conv pair (encoder with BN,
decoder without) becomes a :class:`plexus.models.blocks.ResidualBlock`.
"""

from __future__ import annotations

import torch
from torch import nn

from plexus.models.blocks import (
    AttentionGate,
    EncoderDecoder,
    ResidualBlock,
    channel_list,
    make_upsampler,
    merge_dropout,
)
from plexus.models.registry import register_model
from plexus.models.unet import DoubleConv


def _conv_block(in_channels: int, out_channels: int, batch_norm: bool, residual: bool) -> nn.Module:
    if residual:
        return ResidualBlock(in_channels, out_channels, batch_norm=batch_norm)
    return DoubleConv(in_channels, out_channels, batch_norm=batch_norm)


class AttentionUp(nn.Module):
    """Gate the skip with the coarse feature, upsample x2, concatenate, Dropout2d, conv block (no BN)."""

    def __init__(
        self, in_channels: int, out_channels: int, dropout: float = 0.0, bilinear: bool = False, residual: bool = False
    ):
        super().__init__()
        self.gate = AttentionGate(out_channels, in_channels)
        self.up = make_upsampler(in_channels, bilinear)
        self.drop = merge_dropout(dropout)
        self.conv = _conv_block(in_channels // 2 + out_channels, out_channels, batch_norm=False, residual=residual)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        gated = self.gate(skip, x)
        x = torch.cat([gated, self.up(x)], dim=1)
        return self.conv(self.drop(x))


@register_model("attention_unet")
class AttentionUNet(EncoderDecoder):
    """U-Net with attention-gated skips; channels ``base_channels * 2**level``.

    Input (B, in_channels, H, W) with H and W divisible by ``2**depth``; output
    logits (B, out_channels, H, W).
    """

    residual = False

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
        chans = channel_list(base_channels, depth)
        self.depth = depth
        res = self.residual
        self.inc = _conv_block(in_channels, chans[0], batch_norm=True, residual=res)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _conv_block(chans[i], chans[i + 1], batch_norm=True, residual=res))
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            AttentionUp(chans[i + 1], chans[i], dropout=dropout, bilinear=bilinear, residual=res)
            for i in reversed(range(depth))
        )
        self.outc = nn.Conv2d(chans[0], out_channels, kernel_size=1)
        self.bottleneck_channels = chans[-1]

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The gates' coefficients (B, 1, H_l, W_l), deepest level first (for figures)."""
        feats = self.encode(x)
        maps, h = [], feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            maps.append(up.gate.attention(skip, h))
            h = up(h, skip)
        return maps


@register_model("attention_resunet")
class AttentionResUNet(AttentionUNet):
    """:class:`AttentionUNet` with residual conv blocks (BN on the encoder only)."""

    residual = True
