"""Segmentation losses: soft Dice, -log(soft Dice) (the write-up's loss), BCE+Dice.

Reduction: with ``per_image=True`` (the functions' default) the smooth Dice is
computed per image and then averaged over the batch, so that every image weighs
the same as in the Kaggle score (a mean of per-image Dice, 1 for an empty/empty
image). The write-up's Keras loss computed one smooth Dice over the whole batch
flattened (``per_image=False``); training picks one with the config's
``dice_reduction`` (:func:`segmentation_loss`; the schema default is "batch").
With ``smooth=1`` an empty truth and an all-zero prediction give Dice 1 (loss 0),
and any probability mass predicted on an empty image is penalised, mirroring
Kaggle's empty/empty = 1 convention.

``neg_log_dice_loss = -log(mean over images of soft Dice)``. Its gradient is the Dice's
times ``1 / Dice``, unbounded as the Dice nears 0 (a collapsed batch then takes huge steps);
with ``floor > 0`` (the config's ``log_dice_floor``) the loss below the floor continues as the
tangent of ``-log`` at the floor (:func:`floored_neg_log`): the same value and gradient at or
above it, a gradient at most ``1 / floor`` times the Dice's below it.

All losses take **logits** (B,1,H,W) and a float target (B,1,H,W) in {0,1}, and
compute in float32 even under autocast. With several classes (:data:`MULTICLASS_LOSSES`,
the same names) the logits are (B,K,H,W) under a softmax, the target one-hot (B,K,H,W),
class 0 the background: the Dice is the mean over the foreground classes of each
class's smooth Dice against the rest, the cross-entropy the K-class one. A pixel whose
one-hot target is all zero is ignored (:data:`plexus.labels.IGNORE_LABEL` in the label map):
it counts in neither the cross-entropy nor any Dice sum.

Regions (``region_training: regions``, nnU-Net's region-based training): the logits are
(B,R,H,W), one independent sigmoid per region, and the target is the label map's one-hot
(B,K,H,W) (so that cropping and augmentation treat it as in the multi-class path);
:func:`region_loss` maps it through the (R,K) regions matrix to the multi-hot region target
(region r is 1 where the pixel's label is one of r's; :func:`region_targets`) and applies the
loss per region as a binary one: the smooth Dice of each region channel, averaged over the
regions (``dice_reduction`` as for the classes), BCE over every (pixel, region). A pixel whose
one-hot target is all zero (ignored) counts in neither.

For the two-head model the training loss is
``seg_loss(seg_logits, target) + presence_weight * BCE(presence_logit, target non-empty)``
(:func:`two_head_loss`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from plexus.labels import IGNORE_LABEL


def soft_dice(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    """Smooth Dice ``(2*sum(p*t) + smooth) / (sum(p) + sum(t) + smooth)``.

    ``per_image=True`` (default): one Dice per image (sums over C,H,W), then the
    batch mean. ``per_image=False``: one Dice over the whole batch flattened.
    """
    probs = probs.float()
    target = target.float()
    if per_image:
        p = probs.flatten(1)
        t = target.flatten(1)
        inter = (p * t).sum(1)
        dice = (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)
        return dice.mean()
    inter = (probs * target).sum()
    return (2 * inter + smooth) / (probs.sum() + target.sum() + smooth)


def floored_neg_log(dice: torch.Tensor, floor: float) -> torch.Tensor:
    """``-log(dice)`` at or above ``floor``; below it the tangent ``-log(floor) + (floor - dice) / floor``.

    ``floor <= 0``: the plain ``-log``. The clamp keeps the unused branch finite, so no NaN
    gradient leaks through ``torch.where``.
    """
    if floor <= 0:
        return -torch.log(dice)
    tangent = -math.log(floor) + (floor - dice) / floor
    return torch.where(dice >= floor, -torch.log(dice.clamp(min=floor)), tangent)


def neg_log_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True, floor: float = 0.0
) -> torch.Tensor:
    """``-log(soft_dice(sigmoid(logits), target))``; 0 for a perfect prediction (``floor``: :func:`floored_neg_log`)."""
    return floored_neg_log(soft_dice(torch.sigmoid(logits.float()), target, smooth, per_image), floor)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    """``1 - soft_dice(sigmoid(logits), target)``."""
    return 1 - soft_dice(torch.sigmoid(logits.float()), target, smooth, per_image)


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy with logits, averaged over all pixels."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True
) -> torch.Tensor:
    """``BCE + (1 - soft Dice)``."""
    return bce_loss(logits, target) + dice_loss(logits, target, smooth, per_image)


def _bce_only(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    return bce_loss(logits, target)


IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index


# -- several classes: softmax logits (B,K,H,W), one-hot float target (B,K,H,W), class 0 the background


def multiclass_soft_dice(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                         per_image: bool = True) -> torch.Tensor:
    """Mean over the foreground classes (1..K-1) of each class's smooth Dice against the rest.

    ``per_image=True``: one Dice per (image, class), averaged; ``False``: one per class
    over the whole batch, averaged over the classes. Ignored pixels (an all-zero one-hot
    target) add to no sum.
    """
    valid = target.float().sum(1, keepdim=True)  # 1 labelled, 0 ignored
    p, t = probs[:, 1:].float() * valid, target[:, 1:].float()
    dims = (2, 3) if per_image else (0, 2, 3)
    inter = (p * t).sum(dims)
    dice = (2 * inter + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return dice.mean()


def _softmax_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float, per_image: bool) -> torch.Tensor:
    return multiclass_soft_dice(torch.softmax(logits.float(), dim=1), target, smooth, per_image)


def ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-class cross-entropy of softmax ``logits`` against a one-hot ``target``, mean over labelled pixels.

    Pixels with an all-zero target (ignored) are left out; a batch with none labelled gives 0.
    """
    labelled = target.amax(1) > 0
    labels = torch.where(labelled, target.argmax(1), IGNORE_INDEX)
    if not bool(labelled.any()):
        return logits.float().sum() * 0.0  # no pixel to learn from: a zero with a (zero) gradient, not NaN
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


def mc_neg_log_dice_loss(logits, target, smooth: float = 1.0, per_image: bool = True,
                         floor: float = 0.0) -> torch.Tensor:
    return floored_neg_log(_softmax_dice(logits, target, smooth, per_image), floor)


def mc_dice_loss(logits, target, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    return 1 - _softmax_dice(logits, target, smooth, per_image)


def mc_ce_loss(logits, target, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    return ce_loss(logits, target)


def mc_ce_dice_loss(logits, target, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    """Cross-entropy + 1 - mean foreground smooth Dice (the X-ray study's loss)."""
    return ce_loss(logits, target) + mc_dice_loss(logits, target, smooth, per_image)


# -- regions: sigmoid logits (B,R,H,W), one per region; the target the labels' one-hot (B,K,H,W)


def region_targets(masks: torch.Tensor, regions) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-hot region targets of class-index ``masks`` (B,H,W) for an (R,K) bool ``regions`` matrix.

    Returns ``(target, labelled)``: float (B,R,H,W), 1 where the pixel's label is one of region
    r's (``isin(mask, labels of r)``), and float (B,1,H,W), 0 at ignored pixels
    (:data:`plexus.labels.IGNORE_LABEL`), whose targets are all 0.
    """
    regions = torch.as_tensor(np.asarray(regions, dtype=bool), device=masks.device)
    m = masks.long()
    labelled = m != IGNORE_LABEL
    rows = [torch.isin(m, row.nonzero().flatten()) & labelled for row in regions]
    target = torch.stack(rows, 1) if rows else m.new_zeros((m.shape[0], 0, *m.shape[1:]), dtype=torch.bool)
    return target.float(), labelled.unsqueeze(1).float()


def regions_from_onehot(onehot: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`region_targets` of a one-hot (B,K,H,W) target (an ignored pixel all zero): (B,R,H,W), (B,1,H,W)."""
    onehot = onehot.float()
    target = torch.einsum("bkhw,rk->brhw", onehot, regions.to(device=onehot.device, dtype=onehot.dtype))
    return target, onehot.sum(1, keepdim=True)


def region_soft_dice(probs: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor, smooth: float = 1.0,
                     per_image: bool = True) -> torch.Tensor:
    """Mean over the regions of each region's smooth Dice; ignored pixels (``labelled`` 0) add to no sum.

    ``per_image=True``: one Dice per (image, region), averaged; ``False``: one per region over
    the whole batch, averaged over the regions.
    """
    p, t = probs.float() * labelled, target.float() * labelled
    dims = (2, 3) if per_image else (0, 2, 3)
    inter = (p * t).sum(dims)
    dice = (2 * inter + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return dice.mean()


def region_bce(logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every (labelled pixel, region), averaged; 0 (with a gradient) when none is labelled."""
    logits = logits.float()
    count = labelled.sum() * logits.shape[1]
    if not bool(count > 0):
        return logits.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    return (bce * labelled).sum() / count


def _region_loss(logits: torch.Tensor, onehot: torch.Tensor, *, regions: torch.Tensor, name: str,
                 smooth: float = 1.0, per_image: bool = True, floor: float = 0.0) -> torch.Tensor:
    target, labelled = regions_from_onehot(onehot, regions)
    if name == "ce":
        return region_bce(logits, target, labelled)
    dice = region_soft_dice(torch.sigmoid(logits.float()), target, labelled, smooth, per_image)
    if name == "neg_log_dice":
        return floored_neg_log(dice, floor)
    if name == "dice":
        return 1 - dice
    return region_bce(logits, target, labelled) + 1 - dice  # ce_dice, bce_dice


def region_loss(name: str, dice_reduction: str, regions, log_dice_floor: float = 0.0
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``name`` applied per region as binary: ``loss(logits (B,R,H,W), one-hot (B,K,H,W))``.

    ``dice`` / ``neg_log_dice``: the soft Dice of each region channel, averaged over the regions
    (``neg_log_dice`` floored at ``log_dice_floor``, :func:`floored_neg_log`); ``ce``: BCE;
    ``ce_dice`` and ``bce_dice``: BCE + 1 - Dice. ``regions``: the (R,K) bool matrix.
    """
    if dice_reduction not in ("batch", "image"):
        raise ValueError(f"dice_reduction must be 'batch' or 'image', got {dice_reduction!r}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}")
    matrix = torch.as_tensor(np.asarray(regions, dtype=bool)).float()
    return functools.partial(_region_loss, regions=matrix, name=name, per_image=dice_reduction == "image",
                             floor=log_dice_floor)


#: Segmentation losses by config name (the schema's ``loss`` enum lists exactly these);
#: each is ``loss(logits, target, smooth=1.0, per_image=True) -> scalar``. Binary masks:
#: one sigmoid logit per pixel.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "neg_log_dice": neg_log_dice_loss,
    "dice": dice_loss,
    "bce_dice": bce_dice_loss,
    "ce": _bce_only,
    "ce_dice": bce_dice_loss,
}

#: The same names for several classes: softmax logits, one-hot targets.
MULTICLASS_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "neg_log_dice": mc_neg_log_dice_loss,
    "dice": mc_dice_loss,
    "bce_dice": mc_ce_dice_loss,
    "ce": mc_ce_loss,
    "ce_dice": mc_ce_dice_loss,
}


def get_loss(name: str, multiclass: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The segmentation loss registered as ``name`` in :data:`LOSSES` (:data:`MULTICLASS_LOSSES`)."""
    try:
        return (MULTICLASS_LOSSES if multiclass else LOSSES)[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}") from None


def segmentation_loss(name: str, dice_reduction: str, multiclass: bool = False,
                      log_dice_floor: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``name`` (softmax over classes if ``multiclass``) with its smooth Dice reduced per ``dice_reduction``.

    ``log_dice_floor`` bounds the gradient of ``neg_log_dice`` (:func:`floored_neg_log`).

    "batch" is the seed write-up's smooth Dice over the whole batch flattened,
    "image" one Dice per image, averaged. The batch form matters on this data: per
    image, an all-empty prediction already scores 1 on the (majority) empty masks,
    a local minimum training can fall into.
    """
    if dice_reduction not in ("batch", "image"):
        raise ValueError(f"dice_reduction must be 'batch' or 'image', got {dice_reduction!r}")
    loss = get_loss(name, multiclass)
    if name == "neg_log_dice":
        return functools.partial(loss, per_image=dice_reduction == "image", floor=log_dice_floor)
    return functools.partial(loss, per_image=dice_reduction == "image")


def presence_targets(target: torch.Tensor) -> torch.Tensor:
    """1.0 for images whose mask has any foreground pixel, else 0.0; shape (B,)."""
    return (target.flatten(1).amax(1) > 0).float()


def presence_loss(presence_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE between the presence logits (B,) and "mask non-empty"."""
    return F.binary_cross_entropy_with_logits(presence_logits.float().reshape(-1), presence_targets(target))


def two_head_loss(
    seg_logits: torch.Tensor,
    presence_logits: torch.Tensor,
    target: torch.Tensor,
    seg_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    presence_weight: float,
) -> torch.Tensor:
    """``seg_loss(seg_logits, target) + presence_weight * presence_loss``."""
    return seg_loss(seg_logits, target) + presence_weight * presence_loss(presence_logits, target)
