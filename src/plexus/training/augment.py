"""Joint random augmentation of image and mask batches on torch tensors.

One random affine per sample, built from flips, shift, rotation, shear and zoom
(the Keras ``ImageDataGenerator`` set the write-up used), is applied to the image
and to its mask with the *same* matrix, in one vectorised
``F.affine_grid``/``F.grid_sample`` call over the batch (image and mask are
stacked as channels, so they cannot drift apart).

Parameters (a dict; missing keys are 0)::

    {"hflip": 0.5, "vflip": 0.0,          # flip probabilities
     "shift": 0.1,                         # max |shift| as a fraction of width/height
     "rotate": 10, "shear": 5,             # max |angle| in degrees
     "zoom": 0.1}                          # scale factors drawn from [1-zoom, 1+zoom]

All magnitudes zero means identity: the data come back unchanged, bit for bit.
Magnitudes are drawn uniformly in ``[-max, max]`` (zoom independently for x and
y, as Keras does); every sample consumes the same 8 uniform numbers from the
generator whatever the parameters, so the stream is reproducible.

The matrix (see :func:`affine_matrices`) maps output to input coordinates in
``affine_grid``'s normalised frame (``align_corners=False``); rotation, shear
and zoom are built in pixel units about the image centre and converted, so a
rotation is a true rotation on non-square images. Implementation detail: the
flip part of the matrix is applied with ``torch.flip`` (exact) and the remaining
affine with ``grid_sample``, which composes to the same single affine; samples
whose remaining affine is the identity skip resampling. Images are resampled
bilinearly; masks bilinearly then thresholded at 0.5, so they stay binary.
Pixels entering from outside become 0 (the mean intensity once images are
z-scored) and background in the mask. A one-hot mask pixel that is all zero (an ignored
pixel, :data:`plexus.labels.IGNORE_LABEL`) stays ignored: an extra "ignored" channel is
warped with the classes and wins the argmax like one of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from plexus.labels import IGNORE_LABEL

PARAM_KEYS = ("hflip", "vflip", "shift", "rotate", "shear", "zoom")
_N_DRAWS = 8


def _check_params(params: dict | None) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(PARAM_KEYS)
    if unknown:
        raise ValueError(f"unknown augmentation parameters {sorted(unknown)}; valid: {', '.join(PARAM_KEYS)}")
    for key in ("hflip", "vflip"):
        p = float(params.get(key, 0.0))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation {key} is a probability in [0, 1], got {p}")
    for key in ("shift", "rotate", "shear", "zoom"):
        if float(params.get(key, 0.0)) < 0:
            raise ValueError(f"augmentation {key} is a maximum magnitude >= 0, got {params[key]}")
    if float(params.get("zoom", 0.0)) >= 1:
        raise ValueError(f"augmentation zoom must be < 1, got {params['zoom']}")
    return params


def is_identity(params: dict | None) -> bool:
    """True when ``params`` can only produce the identity transform."""
    params = params or {}
    return all(float(params.get(k, 0.0)) == 0.0 for k in PARAM_KEYS)


def _draw(batch_size: int, params: dict, generator: torch.Generator, size: tuple[int, int] | None):
    """Flip signs (B,2) and the non-flip affine (B,2,3), float64 on the CPU."""
    u = torch.rand(batch_size, _N_DRAWS, generator=generator, dtype=torch.float64)
    sym = 2 * u - 1  # uniform in [-1, 1)
    hflip = u[:, 0] < float(params.get("hflip", 0.0))
    vflip = u[:, 1] < float(params.get("vflip", 0.0))
    shift = float(params.get("shift", 0.0))
    tx, ty = 2 * shift * sym[:, 2], 2 * shift * sym[:, 3]  # normalised units: 2 = full size
    rot = torch.deg2rad(float(params.get("rotate", 0.0)) * sym[:, 4])
    shear = torch.deg2rad(float(params.get("shear", 0.0)) * sym[:, 5])
    zoom = float(params.get("zoom", 0.0))
    zx, zy = 1 + zoom * sym[:, 6], 1 + zoom * sym[:, 7]

    c, s = torch.cos(rot), torch.sin(rot)
    rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    one, zero = torch.ones_like(shear), torch.zeros_like(shear)
    shearing = torch.stack([torch.stack([one, -torch.sin(shear)], -1), torch.stack([zero, torch.cos(shear)], -1)], -2)
    zooming = torch.diag_embed(torch.stack([zx, zy], -1))
    a_pix = rotation @ shearing @ zooming  # pixel units about the centre (x right, y down)

    # to affine_grid's normalised frame: A_norm = S^-1 A_pix S, S = diag(W/2, H/2)
    h, w = size if size is not None else (1, 1)
    a = a_pix.clone()
    a[:, 0, 1] = a_pix[:, 0, 1] * (h / w)
    a[:, 1, 0] = a_pix[:, 1, 0] * (w / h)
    theta = torch.cat([a, torch.stack([tx, ty], -1)[:, :, None]], dim=2)
    signs = torch.stack([torch.where(hflip, -1.0, 1.0), torch.where(vflip, -1.0, 1.0)], -1).to(torch.float64)
    return hflip, vflip, signs, theta


def affine_matrices(
    batch_size: int,
    params: dict | None,
    generator: torch.Generator,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The (B, 2, 3) float32 sampling matrices ``augment_batch`` would use.

    ``size=(H, W)`` makes rotations and shears exact on non-square images (default:
    square). Consumes the generator exactly as :func:`augment_batch` does.
    """
    params = _check_params(params)
    _, _, signs, theta = _draw(batch_size, params, generator, size)
    return (signs[:, :, None] * theta).to(torch.float32)


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    params: dict | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment ``images`` (B,C,H,W float) and ``masks`` (B,1,H,W or B,H,W; or one-hot B,K,H,W) jointly.

    Returns new tensors of the input shapes and dtypes (masks binary; one-hot masks
    stay one-hot: each pixel takes the class of the largest resampled channel, an
    all-zero (ignored) pixel counting as one more class that stays all zero, and
    pixels entering from outside the background, class 0). The random
    draws come only from ``generator`` (a CPU ``torch.Generator``), so the result is
    a function of its state; tensors may live on any device.
    """
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating tensor, got {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    params = _check_params(params)
    b, c, h, w = images.shape
    mask_shape, mask_dtype = masks.shape, masks.dtype
    k = masks.shape[1] if masks.ndim == 4 else 1
    m = masks.reshape(b, k, h, w).to(images.dtype)
    if k > 1:  # one-hot: the ignored pixels as a last channel (0 where labelled and outside the image)
        m = torch.cat([m, 1 - m.sum(1, keepdim=True)], dim=1)
    hflip, vflip, _, theta = _draw(b, params, generator, (h, w))
    if is_identity(params):
        return images, masks

    x = torch.cat([images, m], dim=1)
    dev = x.device
    if hflip.any():
        x = torch.where(hflip.to(dev)[:, None, None, None], x.flip(-1), x)
    if vflip.any():
        x = torch.where(vflip.to(dev)[:, None, None, None], x.flip(-2), x)
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    warp = ~(theta == eye).all(dim=2).all(dim=1)
    if warp.any():
        idx = warp.nonzero().squeeze(1).to(dev)
        th = theta[warp].to(device=dev, dtype=x.dtype if x.dtype == torch.float64 else torch.float32)
        sub = x.index_select(0, idx)
        grid = F.affine_grid(th, list(sub.shape), align_corners=False)
        warped = F.grid_sample(
            sub.to(th.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        ).to(x.dtype)
        x = x.index_copy(0, idx, warped)
    out_images = x[:, :c]
    if k == 1:
        out_masks = (x[:, c:] > 0.5).to(mask_dtype).reshape(mask_shape)
    else:
        # argmax k (the ignored channel) one-hot encodes to all zero once that channel is dropped
        out_masks = F.one_hot(x[:, c:].argmax(1), k + 1)[..., :k].permute(0, 3, 1, 2).to(mask_dtype).contiguous()
    return out_images.contiguous(), out_masks


def random_crops(
    x: torch.Tensor,
    y: torch.Tensor,
    size: tuple[int, int],
    generator: torch.Generator,
    foreground_fraction: float = 0.0,
):
    """One ``size`` crop per sample of images ``x`` (B,C,H,W) and their targets ``y`` (B,K,H,W) or (B,H,W).

    Offsets are drawn from ``generator``: two uniform numbers per sample, whatever the sizes
    (a random crop, uniform over the positions that fit in the image).

    Lesion-aware sampling (``foreground_fraction`` f in [0, 1], nnU-Net's foreground
    oversampling): the *last* ``k = floor(f * B + 0.5)`` crops of the batch (f rounded half
    up; nnU-Net forces the last third) are centred on a pixel drawn uniformly among the
    foreground pixels of their own target, the window shifted (clipped) so that it stays
    inside the image; the centre of an even side ``h`` is row ``top + h // 2``. A target
    with no foreground pixel falls back to its random crop. The first ``B - k`` crops are
    random as with f = 0. Foreground: for a one-channel (or (B,H,W)) target, a binary 0/1
    mask or a class-index map, every pixel > 0 that is not :data:`plexus.labels.IGNORE_LABEL`;
    for a one-hot (B,K,H,W) target, K > 1, every pixel of a class 1..K-1 (an ignored pixel
    is all zero there). The pixel choice takes ``k`` more float64 uniform numbers from
    ``generator`` (after the 2B offsets, only when k > 0), so f = 0 draws, and crops,
    exactly as before, and every batch of a given size draws the same count.
    """
    h, w = size
    big_h, big_w = x.shape[-2:]
    if h > big_h or w > big_w:
        raise ValueError(f"patch {h}x{w} is larger than the images {big_h}x{big_w}")
    foreground_fraction = float(foreground_fraction)
    if not 0.0 <= foreground_fraction <= 1.0:
        raise ValueError(f"foreground_fraction is a fraction in [0, 1], got {foreground_fraction}")
    b = x.shape[0]
    u = torch.rand(b, 2, generator=generator)
    top = (u[:, 0] * (big_h - h + 1)).long().clamp_(max=big_h - h)
    left = (u[:, 1] * (big_w - w + 1)).long().clamp_(max=big_w - w)
    k = min(b, math.floor(foreground_fraction * b + 0.5))
    if k > 0:
        pick = torch.rand(k, generator=generator, dtype=torch.float64)
        top, left = _foreground_offsets(y[b - k:], pick, (h, w), top, left)
    xs = torch.stack([x[i, ..., t:t + h, s:s + w] for i, (t, s) in enumerate(zip(top.tolist(), left.tolist()))])
    ys = torch.stack([y[i, ..., t:t + h, s:s + w] for i, (t, s) in enumerate(zip(top.tolist(), left.tolist()))])
    return xs.contiguous(), ys.contiguous()


def foreground(y: torch.Tensor) -> torch.Tensor:
    """(B,H,W) bool foreground of targets ``y`` (B,H,W) or (B,1,H,W) (binary or class indices) or one-hot (B,K,H,W)."""
    if y.ndim == 3 or y.shape[1] == 1:
        m = y.reshape(y.shape[0], *y.shape[-2:])
        return (m > 0) & (m != IGNORE_LABEL)
    return (y[:, 1:] > 0).any(dim=1)


def _foreground_offsets(y, pick, size, top, left):
    """``top``/``left`` (B,) with their last ``len(y)`` entries centred on the foreground pixel ``pick`` selects."""
    h, w = size
    big_h, big_w = y.shape[-2:]
    k = y.shape[0]
    fg = foreground(y).reshape(k, -1)
    counts = fg.sum(dim=1).cpu()
    cum = fg.cumsum(dim=1)
    # the j-th foreground pixel (0-based) is the first position where the running count reaches j + 1
    j = (pick * counts.to(torch.float64)).long().clamp_(max=(counts - 1).clamp(min=0))
    flat = torch.searchsorted(cum, (j + 1)[:, None].to(cum.device)).squeeze(1).cpu()
    row, col = flat // big_w, flat % big_w
    has = counts > 0
    top, left = top.clone(), left.clone()
    top[-k:] = torch.where(has, (row - h // 2).clamp(0, big_h - h), top[-k:])
    left[-k:] = torch.where(has, (col - w // 2).clamp(0, big_w - w), left[-k:])
    return top, left
