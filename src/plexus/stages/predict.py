"""Prediction stages: out-of-fold, test and noisy probabilities; the folds' test average.

A workflow job predicts with every fold's model of one run (or every noise condition of
one sigma): in a small study, importing torch is most of a prediction job's time, so one
process per run instead of one per fold saves that start-up for all but one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from plexus.data import splits
from plexus.io import atomic
from plexus.io.contracts import check_aligned, read_folds, read_npz

if TYPE_CHECKING:
    import pandas as pd


def _train_and_folds(train_npz, folds_csv) -> tuple[dict, pd.DataFrame]:
    """The training arrays and the folds table, checked to hold the same images in the same order."""
    data, folds = read_npz(train_npz), read_folds(folds_csv)
    check_aligned(data["image_id"], folds["image_id"], train_npz, folds_csv)
    return data, folds


def _held_out(data: dict, folds: pd.DataFrame, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Image ids, images and channel flags (``None`` without missing channels) of ``fold``'s held-out part."""
    _, val_idx = splits.fold_indices(folds, fold)
    present = data.get("present")
    return data["image_id"][val_idx], data["images"][val_idx], None if present is None else present[val_idx]


def stored_probs(model_pt, images, present=None, *, batch_size: int = 64, threads: int | None = None, flips=(),
                 device="auto") -> dict:
    """The arrays a prediction job stores for ``images`` (``present``: their channel flags, or ``None``):
    ``prob`` (and ``presence``, ``prob_tta``...) of :func:`plexus.inference.predict.predict_probs`, ungated,
    since the presence gate is tuned on OOF and applied once, after averaging. The workflow's
    prediction jobs and ``plexus predict`` both call it."""
    from plexus.inference.predict import predict_probs

    return predict_probs(model_pt, images, batch_size=batch_size, device=device, threads=threads,
                         presence_gate=None, flips=tuple(flips), present=present)


def predict_folds_stage(model_pts, folds, train_npz, folds_csv, oof_npzs, *, test_npz=None, test_npzs=(),
                        batch_size: int = 64, threads: int | None = None, flips=()) -> None:
    """Fold ``folds[i]``'s model ``model_pts[i]`` predicts that fold's held-out images into
    ``oof_npzs[i]`` and, given ``test_npz``, every test image into ``test_npzs[i]``.

    No ``oof_npzs`` (and ``train_npz``, ``folds_csv`` ``None``): the test images only. The workflow
    predicts the two in separate jobs (``predict_oof``, ``predict``), so that a change to the test
    images never rewrites an OOF file. ``flips`` (e.g. ``["hflip"]``) adds the flip-averaged
    ``prob_tta`` (``presence_tta``). The arrays are read once for all folds.
    """
    folds, model_pts, oof_npzs = list(folds), list(model_pts), list(oof_npzs)
    test_npzs = list(test_npzs)
    if len(model_pts) != len(folds) or (oof_npzs and len(oof_npzs) != len(folds)):
        raise ValueError(f"{len(model_pts)} models, {len(folds)} folds and {len(oof_npzs)} OOF outputs: "
                         "one of each per fold")
    if (test_npz is None) != (not test_npzs) or (test_npzs and len(test_npzs) != len(folds)):
        raise ValueError(f"test predictions need the test arrays and one output per fold, got {test_npz!r} "
                         f"and {len(test_npzs)} outputs for {len(folds)} folds")
    if not oof_npzs and not test_npzs:
        raise ValueError("nothing to predict: no OOF and no test outputs")
    data, fold_table = _train_and_folds(train_npz, folds_csv) if oof_npzs else (None, None)
    test = None if test_npz is None else read_npz(test_npz)

    def predict(model_pt, ids, images, present, out_npz):
        out = stored_probs(model_pt, images, present, batch_size=batch_size, threads=threads, flips=flips)
        atomic.write_npz(out_npz, image_id=ids, **out)

    for i, (fold, model_pt) in enumerate(zip(folds, model_pts)):
        written = []
        if oof_npzs:
            predict(model_pt, *_held_out(data, fold_table, int(fold)), oof_npzs[i])
            written.append(str(oof_npzs[i]))
        if test is not None:
            predict(model_pt, test["image_id"], test["images"], test.get("present"), test_npzs[i])
            written.append(str(test_npzs[i]))
        print(f"fold {fold}: {model_pt} -> {', '.join(written)}")


def average_stage(fold_npzs, out_npz) -> None:
    """Average the folds' test probabilities (same images, same order), flip-averaged ones too.

    One fold file at a time is added into float32 sums: holding every fold's maps at once
    took 1.9 GB for 5 folds of 5,508 Kaggle test maps.
    """
    sums, first = {}, None
    for path in fold_npzs:
        run = read_npz(path)
        if first is None:
            first = run
        check_aligned(run["image_id"], first["image_id"], path, fold_npzs[0])
        for key in ("prob", "prob_tta", "presence", "presence_tta"):
            if key in first:
                if key not in run:
                    raise ValueError(f"{path}: no {key!r} array, unlike {fold_npzs[0]}; rerun its prediction")
                if key in sums:
                    sums[key] += run[key]
                else:
                    sums[key] = run[key].astype(np.float32)
    out = {"image_id": first["image_id"]}
    for key, total in sums.items():
        mean = total / np.float32(len(fold_npzs))
        out[key] = mean.astype(np.float16) if key.startswith("prob") else mean
    atomic.write_npz(out_npz, **out)


def noise_predict_stage(condition_models: dict, train_npz, folds_csv, sigma: float, seed: int,
                        out_npzs: dict, *, batch_size: int = 64, threads: int | None = None) -> None:
    """Predict each fold's held-out images with its model after adding noise of ``sigma``.

    ``condition_models[c][k]`` is training condition c's model of fold k; ``out_npzs[c]``
    gets ``image_id``, ``fold``, ``prob`` (ungated) and, for two-head models, ``presence``.
    Every condition sees the same noisy images: the noise is seeded per image id.
    """
    from plexus.inference.predict import predict_probs

    if set(condition_models) != set(out_npzs):
        raise ValueError(f"conditions {sorted(condition_models)} and outputs {sorted(out_npzs)} differ")
    data, folds = _train_and_folds(train_npz, folds_csv)
    for condition, model_pts in condition_models.items():
        ids, fold_of, probs, presence = [], [], [], []
        for fold, model_pt in enumerate(model_pts):
            fold_ids, images, present = _held_out(data, folds, fold)
            noise = {"sigma": float(sigma), "seed": int(seed), "image_ids": fold_ids.tolist()}
            out = predict_probs(model_pt, images, batch_size=batch_size, threads=threads,
                                noise=noise, presence_gate=None, present=present)
            ids.append(fold_ids)
            fold_of.append(np.full(len(fold_ids), fold))
            probs.append(out["prob"])
            if "presence" in out:
                presence.append(out["presence"])
        extra = {"presence": np.concatenate(presence)} if presence else {}
        atomic.write_npz(out_npzs[condition], image_id=np.concatenate(ids), fold=np.concatenate(fold_of),
                         prob=np.concatenate(probs), **extra)
