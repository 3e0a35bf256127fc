"""U-Net++ (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical Image Segmentation").

The encoder is the U-Net one (nodes ``X[i][0]``: conv-BN-ReLU x2, max pooling).
The decoder replaces the plain skips with nested dense skip pathways: node
``X[i][j]`` (``j >= 1``) concatenates every earlier node of its level
``X[i][0..j-1]`` with the x2-upsampled ``X[i+1][j-1]``, applies ``Dropout2d`` (the
project's dropout on every merge) and conv-ReLU x2 without batch norm.

Deep supervision (``deep_supervision=True``) puts a 1x1 head on every top node
``X[0][1..depth]``. ``forward`` then returns the **mean of the heads' logits**
(one tensor, so the loss code is unchanged), in training and, by default, in
evaluation too so that inference uses what was trained (the paper's "accurate
mode"). ``ds_eval="last"`` makes evaluation use the last head ``X[0][depth]``
alone. Note that one loss on the averaged logits is not the paper's average of
per-head losses: the heads are trained jointly, not each to a full solution.
"""

from __future__ import annotations

import torch
from torch import nn

from plexus.models.blocks import EncoderDecoder, channel_list, make_upsampler, merge_dropout
from plexus.models.registry import register_model
from plexus.models.unet import DoubleConv


class NestedNode(nn.Module):
    """Decoder node ``X[i][j]``: upsample ``X[i+1][j-1]``, concatenate ``X[i][0..j-1]``,
    Dropout2d, conv-ReLU x2 (no BN)."""

    def __init__(self, level_channels: int, j: int, dropout: float = 0.0, bilinear: bool = False):
        super().__init__()
        self.up = make_upsampler(2 * level_channels, bilinear)
        self.drop = merge_dropout(dropout)
        self.conv = DoubleConv((j + 1) * level_channels, level_channels, batch_norm=False)

    def forward(self, same_level: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        x = torch.cat([*same_level, self.up(below)], dim=1)
        return self.conv(self.drop(x))


@register_model("unetpp")
class UNetPlusPlus(EncoderDecoder):
    """U-Net++ with ``depth`` poolings; channels ``base_channels * 2**level``.

    Input (B, in_channels, H, W) with H and W divisible by ``2**depth``; output
    logits (B, out_channels, H, W). ``encode`` returns the encoder nodes
    ``X[0..depth][0]`` (last = bottleneck).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        dropout: float = 0.2,
        bilinear: bool = False,
        out_channels: int = 1,
        deep_supervision: bool = False,
        ds_eval: str = "mean",
    ):
        super().__init__()
        if ds_eval not in ("mean", "last"):
            raise ValueError(f"ds_eval must be 'mean' or 'last', got {ds_eval!r}")
        chans = channel_list(base_channels, depth)
        self.depth = depth
        self.deep_supervision = deep_supervision
        self.ds_eval = ds_eval
        self.inc = DoubleConv(in_channels, chans[0], batch_norm=True)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(chans[i], chans[i + 1], batch_norm=True)) for i in range(depth)
        )
        # nodes[j - 1][i] is X[i][j], for j = 1..depth and i = 0..depth - j
        self.nodes = nn.ModuleList(
            nn.ModuleList(NestedNode(chans[i], j, dropout, bilinear) for i in range(depth - j + 1))
            for j in range(1, depth + 1)
        )
        n_heads = depth if deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(chans[0], out_channels, kernel_size=1) for _ in range(n_heads))
        self.bottleneck_channels = chans[-1]

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        grid = [[f] for f in feats]  # grid[i] = [X[i][0], X[i][1], ...]
        for j, column in enumerate(self.nodes, start=1):
            for i, node in enumerate(column):
                grid[i].append(node(grid[i][:j], grid[i + 1][j - 1]))
        top = grid[0][1:]  # X[0][1..depth]
        if not self.deep_supervision:
            return self.heads[-1](top[-1])
        if not self.training and self.ds_eval == "last":
            return self.heads[-1](top[-1])
        return torch.stack([head(t) for head, t in zip(self.heads, top)]).mean(dim=0)
