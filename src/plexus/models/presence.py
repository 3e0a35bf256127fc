"""A nerve-presence head for any encoder-decoder model of the zoo.

:class:`WithPresenceHead` wraps a model exposing ``encode(x) -> list of level
features`` (last = bottleneck), ``decode(feats) -> logits`` and
``bottleneck_channels``, and adds the head of :class:`plexus.models.unet.TwoHeadUNet`:
global average pool of the bottleneck (written as a float mean, deterministic on
CUDA unlike ``AdaptiveAvgPool2d``'s backward), optional ``Dropout``, a linear layer
to one logit. ``forward`` returns ``(seg_logits, presence_logits (B,))``.

For U-Net++ the bottleneck is the deepest encoder node ``X[depth][0]``.
"""

from __future__ import annotations

import torch
from torch import nn


class WithPresenceHead(nn.Module):
    """``model`` plus a presence classifier on its bottleneck (two-head variant)."""

    #: marks models whose forward returns ``(seg_logits, presence_logits)``
    two_head = True

    def __init__(self, model: nn.Module, presence_dropout: float = 0.0):
        super().__init__()
        for attr in ("encode", "decode", "bottleneck_channels"):
            if not hasattr(model, attr):
                raise TypeError(f"{type(model).__name__} has no {attr!r}; the presence head needs encode/decode")
        self.model = model
        self.presence_drop = nn.Dropout(presence_dropout) if presence_dropout > 0 else nn.Identity()
        self.presence = nn.Linear(model.bottleneck_channels, 1)

    @property
    def bottleneck_channels(self) -> int:
        return self.model.bottleneck_channels

    @property
    def depth(self) -> int:
        return self.model.depth

    def check_input(self, x: torch.Tensor) -> None:
        self.model.check_input(x)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.encode(x)

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.model.decode(feats)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.encode(x)
        pooled = feats[-1].float().mean(dim=(2, 3))
        presence = self.presence(self.presence_drop(pooled)).squeeze(1)
        return self.model.decode(feats), presence


def with_presence_head(model: nn.Module, presence_dropout: float = 0.0) -> WithPresenceHead:
    """Wrap ``model`` so that it also returns a presence logit per image."""
    return WithPresenceHead(model, presence_dropout=presence_dropout)
