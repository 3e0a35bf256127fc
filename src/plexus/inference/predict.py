"""Inference: nerve probabilities (and presence) from a trained ``model.pt``.

``predict_probs`` returns the arrays of the "Probabilities" contract
(``docs/contracts.md``): ``prob`` float16 (N,H,W) at the model input size and, for
two-head models, ``presence`` float32 (N,).

Gating (two-head models): the returned ``prob`` is ``prob * (presence >=
presence_gate)``, i.e. the whole map is zeroed for images the presence head calls
empty (``presence_gate=0.5`` by default; ``None`` returns the ungated map). The
ungated presence probability is returned alongside.

Precision follows the training settings stored in ``model.pt`` (``amp``,
``amp_dtype``; :func:`plexus.training.precision.autocast_dtype`): by default
autocast float16 on CUDA and float32 on the CPU; ``amp_dtype: bfloat16`` autocasts
in bfloat16 on both. Settings a ``model.pt`` lacks take the schema's defaults.
Inference runs in the channels_last memory format (faster with oneDNN and cuDNN).

Flip test-time augmentation (``flips=("hflip",)``): the network also sees each
flipped image; the flipped outputs are flipped back and averaged with the plain one
into ``prob_tta`` (and ``presence_tta``), stored beside the plain arrays so that the
post-processing stage can decide on OOF whether the average helps.

Region models (``region_training: regions``; ``model.pt`` has ``activation:
"sigmoid_regions"``, ``regions`` and ``region_names``): ``prob`` float16 (N,R,H,W), one
independent sigmoid probability per region (they need not sum to 1; nested regions nest only
approximately), flipped back and averaged the same way into ``prob_tta``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from plexus.data.noise import add_gaussian_noise, image_seed
from plexus.device import pick_device
from plexus.inference.sliding import sliding_window
from plexus.models import build_model, is_two_head
from plexus.training.precision import autocast_dtype
from plexus.training.settings import model_schema

#: Flip name -> the tensor dimension of an (N, C, H, W) batch it reverses.
FLIPS = {"hflip": 3, "vflip": 2}


def load_model(path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of ``model.pt`` in eval mode on ``device``.

    Returns ``(model, meta)``; ``meta`` is the saved dict without ``state_dict``
    (``arch``, ``model_kwargs``, ``mean``, ``std``, ``input_size``, ``settings``...).
    """
    dev = pick_device(device)
    saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = build_model(saved["arch"], **saved["model_kwargs"])
    model.load_state_dict(saved["state_dict"])
    model.eval().to(dev)
    meta = {k: v for k, v in saved.items() if k != "state_dict"}
    return model, meta


def noisy_images(images: np.ndarray, noise: dict | None) -> np.ndarray:
    """Apply prediction-time noise ``{"sigma", "seed", "image_ids"}`` (or none).

    Each image's noise is seeded by ``image_seed(seed, sigma, image_id)``, so it
    does not depend on batch size or on which other images are predicted.
    """
    if not noise or float(noise.get("sigma", 0.0)) == 0:
        return images
    sigma = float(noise["sigma"])
    ids = list(noise["image_ids"])
    if len(ids) != len(images):
        raise ValueError(f"noise image_ids has {len(ids)} entries for {len(images)} images")
    seeds = [image_seed(int(noise.get("seed", 0)), sigma, i) for i in ids]
    return add_gaussian_noise(images, sigma, seeds)


def _autocast(meta: dict, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the stored training settings on ``device`` (None: float32)."""
    stored = meta.get("settings") or {}
    props = model_schema()["properties"]
    amp, amp_dtype = (stored.get(k, props[k]["default"]) for k in ("amp", "amp_dtype"))
    return autocast_dtype(device, bool(amp), str(amp_dtype))


@torch.no_grad()
def predict_probs(
    model_path,
    images,
    *,
    batch_size: int = 32,
    device="auto",
    threads: int | None = None,
    noise: dict | None = None,
    presence_gate: float | None = 0.5,
    flips: tuple[str, ...] | list[str] = (),
    present=None,
    drop_channel: int | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities for uint8 ``images`` (N,H,W) at the model's input size.

    Returns ``{"prob": float16 (N,H,W)}`` plus ``"presence": float32 (N,)`` for
    two-head models, whose ``prob`` is gated by ``presence >= presence_gate``.
    Any dataset: uint8/uint16 ``images`` (N,C,H,W), ``present`` (N,C) bool (a
    missing channel is 0 after normalisation, as in training); ``drop_channel``
    treats that channel as missing in every image (the missing-channel study). A
    model of several classes returns softmax ``prob`` float16 (N,K,H,W); a region model
    (``model.pt`` ``activation`` ``sigmoid_regions``) the per-region sigmoids (N,R,H,W).
    With ``flips``, also ``prob_tta`` (and ``presence_tta``): the mean of the plain and
    the flipped-back flipped predictions, gated the same way by its own presence.
    """
    unknown = [f for f in flips if f not in FLIPS]
    if unknown:
        raise ValueError(f"unknown test-time flips {unknown}; known: {', '.join(FLIPS)}")
    images = np.asarray(images)
    if images.dtype not in (np.uint8, np.uint16) or images.ndim not in (3, 4):
        raise ValueError(f"images must be uint8 or uint16, (N, H, W) or (N, C, H, W), "
                         f"got {images.dtype} {images.shape}")
    channels = 1 if images.ndim == 3 else images.shape[1]
    keep = np.ones((len(images), channels), dtype=bool) if present is None else np.asarray(present, dtype=bool)
    if keep.shape != (len(images), channels):
        raise ValueError(f"present must be ({len(images)}, {channels}), got {keep.shape}")
    if drop_channel is not None:
        keep = keep.copy()
        keep[:, int(drop_channel)] = False
    dev = pick_device(device)
    prev_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        model, meta = load_model(model_path, dev)
        size = tuple(int(s) for s in meta["input_size"])
        if images.shape[-2:] != size:
            raise ValueError(
                f"images are {images.shape[-2]}x{images.shape[-1]} but the model expects {size[0]}x{size[1]}"
            )
        n_classes = meta.get("n_classes")
        regions = meta.get("activation") == "sigmoid_regions"
        # output channels of the map: one per class (softmax) or region (sigmoids); None: a binary (N, H, W) map
        outputs = len(meta["regions"]) if regions else n_classes
        expected = int(meta["model_kwargs"].get("in_channels", 1))
        if channels != expected:
            raise ValueError(f"images have {channels} channel(s) but the model was trained on {expected}")
        images = noisy_images(images, noise)
        two_head = is_two_head(model)
        cuda = dev.type == "cuda"
        amp = _autocast(meta, dev)
        model = model.to(memory_format=torch.channels_last)
        mean, std = _statistics(meta, dev)
        n = len(images)
        views = [None, *flips]  # None: the plain image
        shape = (n, *size) if outputs is None else (n, int(outputs), *size)  # images (N, H, W) or (N, C, H, W)
        probs = {v: np.empty(shape, dtype=np.float32) for v in views}
        keep_t = torch.from_numpy(keep).float()
        presences = {v: np.empty(n, dtype=np.float32) for v in views}

        def whole(x):
            with torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                out = model(x)
            seg, pres = out if two_head else (out, None)
            if regions:
                p = torch.sigmoid(seg.float())
            else:
                p = torch.sigmoid(seg.float())[:, 0] if n_classes is None else torch.softmax(seg.float(), dim=1)
            return p, None if pres is None else torch.sigmoid(pres.float())

        stored = meta.get("settings") or {}
        patch = stored.get("patch_size")

        def forward(x):
            """The whole image at once, or (a model trained on patches) a blended sliding window."""
            if not patch:
                return whole(x)
            blended = sliding_window(lambda w: (lambda p: p if p.ndim == 4 else p[:, None])(whole(w)[0]), x,
                                     tuple(patch), float(stored.get("window_overlap", 0.5)))
            return (blended if outputs is not None else blended[:, 0]), None

        for start in range(0, n, batch_size):
            part = images[start : start + batch_size]
            chunk = torch.from_numpy(np.ascontiguousarray(part if part.dtype == np.uint8 else part.astype(np.float32)))
            if cuda:
                chunk = chunk.pin_memory().to(dev, non_blocking=True)
            x = chunk.float()
            x = ((x.unsqueeze(1) if x.ndim == 3 else x) - mean) / std
            if not keep[start : start + batch_size].all():
                x = x * keep_t[start : start + batch_size].to(dev)[:, :, None, None]
            x = x.contiguous(memory_format=torch.channels_last)
            stop = start + len(x)
            for view in views:
                if view is None:
                    p, pp = forward(x)
                else:  # predict the flipped image, flip the map back (dims of p: N, H, W or N, K, H, W)
                    dim = FLIPS[view]
                    p, pp = forward(torch.flip(x, dims=[dim]).contiguous(memory_format=torch.channels_last))
                    p = torch.flip(p, dims=[dim - 1 if outputs is None else dim])
                probs[view][start:stop] = p.cpu().numpy()
                if pp is not None:
                    presences[view][start:stop] = pp.cpu().numpy()
    finally:
        torch.set_num_threads(prev_threads)
    result = _gated(probs[None], presences[None] if two_head else None, presence_gate)
    if flips:
        tta = _gated(np.mean([probs[v] for v in views], axis=0),
                     np.mean([presences[v] for v in views], axis=0) if two_head else None, presence_gate)
        result.update({f"{key}_tta": value for key, value in tta.items()})
    return result


def _statistics(meta: dict, device: torch.device):
    """The training normalisation of ``model.pt``: floats, or (1, C, 1, 1) tensors per channel."""
    mean, std = meta["mean"], meta["std"]
    if isinstance(mean, (int, float)):
        return float(mean), float(std)
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float32, device=device)[None, :, None, None]  # noqa: E731
    return as_tensor(mean), as_tensor(std)


def _gated(prob: np.ndarray, presence: np.ndarray | None, presence_gate: float | None) -> dict[str, np.ndarray]:
    """The contract's arrays: ``prob`` float16, zeroed below the gate, and ``presence``."""
    if presence is None:
        return {"prob": prob.astype(np.float16)}
    if presence_gate is not None:
        prob = prob * (presence >= presence_gate).reshape(-1, *([1] * (prob.ndim - 1)))
    return {"prob": prob.astype(np.float16), "presence": presence.astype(np.float32)}
