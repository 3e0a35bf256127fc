"""R2U-Net (Alom et al. 2018, "Recurrent Residual Convolutional Neural Network based on U-Net").

Every conv pair of the U-Net becomes a recurrent residual block
(:class:`plexus.models.blocks.RRCNNBlock`): a 1x1 conv to the level's channels,
then two recurrent conv layers with ``recurrence`` steps each (``t = 2`` in the
paper; weights shared over time), the 1x1 output added back. The encoder's
recurrent convs carry batch norm, the decoder's do not; every merge of the
decoder has ``Dropout2d``; downsampling is 2x2 max pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from plexus.models.blocks import EncoderDecoder, RRCNNBlock, channel_list, make_upsampler, merge_dropout
from plexus.models.registry import register_model


class R2Up(nn.Module):
    """Upsample x2, concatenate the skip, Dropout2d, recurrent residual block (no BN)."""

    def __init__(
        self, in_channels: int, out_channels: int, dropout: float = 0.0, bilinear: bool = False, recurrence: int = 2
    ):
        super().__init__()
        self.up = make_upsampler(in_channels, bilinear)
        self.drop = merge_dropout(dropout)
        self.conv = RRCNNBlock(in_channels // 2 + out_channels, out_channels, recurrence, batch_norm=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([skip, self.up(x)], dim=1)
        return self.conv(self.drop(x))


@register_model("r2unet")
class R2UNet(EncoderDecoder):
    """Recurrent residual U-Net; channels ``base_channels * 2**level``.

    Input (B, in_channels, H, W) with H and W divisible by ``2**depth``; output
    logits (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        dropout: float = 0.2,
        bilinear: bool = False,
        out_channels: int = 1,
        recurrence: int = 2,
    ):
        super().__init__()
        chans = channel_list(base_channels, depth)
        self.depth = depth
        self.recurrence = recurrence
        self.inc = RRCNNBlock(in_channels, chans[0], recurrence, batch_norm=True)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), RRCNNBlock(chans[i], chans[i + 1], recurrence, batch_norm=True))
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            R2Up(chans[i + 1], chans[i], dropout=dropout, bilinear=bilinear, recurrence=recurrence)
            for i in reversed(range(depth))
        )
        self.outc = nn.Conv2d(chans[0], out_channels, kernel_size=1)
        self.bottleneck_channels = chans[-1]

