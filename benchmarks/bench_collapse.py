"""Old versus new training recipe: how often folds collapse, and the OOF score of each.

On the synthetic nerve data (:mod:`plexus.data.synthetic`, read back and resized to 64x80
like the default DAG's preprocessing), a U-Net of the default's shape (base 8, depth 3, Adam,
-log Dice over the batch, the default's augmentation) is trained on every fold of a
subject-grouped K-fold split, for several seeds and learning rates, with two recipes:

* ``old``: constant learning rate (``scheduler: none``), no gradient clipping, the plain
  -log Dice (``log_dice_floor: 0``), no collapse guard, validation on the OOF fold;
* ``new``: the schema defaults (poly decay with one warm-up epoch, clipping at 12, floored
  -log Dice, ``on_collapse: recover``; ``validation: inner`` when the numbers of docs/benchmarks.md
  were made, ``auto`` since issue 26).

A fold *collapses* when its epoch training loss stays above 1.5x its best so far for 3
epochs (the guard's default criterion; for ``old`` read off ``history.csv``, for ``new``
the guard's events). The OOF score is the mean per-image Kaggle Dice (empty/empty = 1) of
the out-of-fold images at cutoff 0.5, over all images of all folds.

Usage: ``nice python benchmarks/bench_collapse.py [--subjects 16] [--images 24] [--epochs 20]
[--folds 3] [--seeds 1 2 3] [--lrs 0.001 0.003]``; prints one table (Markdown) and writes
nothing outside a temporary folder. The numbers in docs/benchmarks.md came from the
command given there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from plexus.data.synthetic import generate_dataset
from plexus.inference.predict import predict_probs
from plexus.io.tiff import read_tiff
from plexus.report.tables import to_markdown
from plexus.training.loop import TrainingDiverged, train_model
from plexus.training.settings import TrainSettings

SIZE = (64, 80)
BASE = {"arch": "unet", "input_size": list(SIZE), "base_channels": 8, "depth": 3, "dropout": 0.2,
        "loss": "neg_log_dice", "optimizer": "adam", "batch_size": 16,
        "augment": {"hflip": 0.5, "vflip": 0.0, "shift": 0.05, "rotate": 5.0, "shear": 3.0, "zoom": 0.05}}
OLD = {"scheduler": "none", "grad_clip": 0.0, "log_dice_floor": 0.0, "on_collapse": "none", "validation": "oof"}
NEW: dict = {}  # the schema defaults


def load_data(root: Path, n_subjects: int, per_subject: int, seed: int):
    """Images (N,64,80) uint8, masks {0,1} and subjects of a freshly generated synthetic set."""
    generate_dataset(root, n_subjects=n_subjects, images_per_subject=per_subject, n_test_subjects=1,
                     test_images_per_subject=1, seed=seed, threads=2)
    images, masks, subjects = [], [], []
    for path in sorted((root / "train").glob("*_mask.tif")):
        subject = path.name.split("_")[0]
        image = read_tiff(path.with_name(path.name.replace("_mask", "")))
        images.append(image)
        masks.append(read_tiff(path) > 0)
        subjects.append(subject)
    x = torch.from_numpy(np.stack(images)).float()[:, None]
    y = torch.from_numpy(np.stack(masks)).float()[:, None]
    x = F.interpolate(x, size=SIZE, mode="area").round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
    y = (F.interpolate(y, size=SIZE, mode="area") > 0.5).to(torch.uint8)[:, 0].numpy()
    return x, y, np.asarray(subjects)


def folds_of(subjects: np.ndarray, k: int) -> np.ndarray:
    """Subject-grouped folds: subjects dealt round-robin in sorted order."""
    names = np.unique(subjects)
    fold_of = {s: i % k for i, s in enumerate(names)}
    return np.array([fold_of[s] for s in subjects])


def collapsed(train_loss: list[float], factor: float = 1.5, epochs: int = 3) -> bool:
    """The guard's criterion when this benchmark was made (issue 22), read off a history. The guard
    now counts the share of progress lost instead (issue 26; :func:`plexus.training.guard.collapse_threshold`);
    this stays so the recorded numbers can be reproduced."""
    best, streak = np.inf, 0
    for loss in train_loss:
        if loss < best:
            best, streak = loss, 0
        elif loss > factor * best:
            streak += 1
            if streak >= epochs:
                return True
        else:
            streak = 0
    return False


def kaggle_dice(prob: np.ndarray, truth: np.ndarray) -> np.ndarray:
    pred, true = prob > 0.5, truth > 0
    inter = (pred & true).sum((1, 2))
    denom = pred.sum((1, 2)) + true.sum((1, 2))
    return np.where(denom > 0, 2 * inter / np.maximum(denom, 1), 1.0)


def run(args) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images, masks, subjects = load_data(tmp / "raw", args.subjects, args.images, args.data_seed)
        folds = folds_of(subjects, args.folds)
        print(f"{len(images)} images of {len(np.unique(subjects))} subjects, {args.folds} folds", flush=True)
        for lr in args.lrs:
            for recipe, overrides in (("old", OLD), ("new", NEW)):
                for seed in args.seeds:
                    settings = TrainSettings.from_config({**BASE, **overrides, "lr": lr, "seed": seed,
                                                          "epochs": args.epochs})
                    scores, n_collapsed, n_failed, recovered = [], 0, 0, 0
                    for fold in range(args.folds):
                        out = tmp / f"{recipe}_{lr}_{seed}_{fold}"
                        t0 = time.perf_counter()
                        train_idx, val_idx = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
                        try:
                            train_model(images, masks, train_idx, val_idx, settings, out,
                                        checkpoint_path=out / "ck.pt", fold=fold, device="cpu", threads=1,
                                        subjects=subjects, log=lambda _: None)
                        except TrainingDiverged:  # TrainingCollapsed too: no model, the fold scores 0
                            n_failed += 1
                            n_collapsed += 1
                            scores.append(np.zeros(len(val_idx)))
                            continue
                        hist = pd.read_csv(out / "history.csv")
                        info = json.loads((out / "train_info.json").read_text())
                        events = len(info["collapse_events"])
                        recovered += events
                        n_collapsed += bool(events) or collapsed(hist["train_loss"].tolist())
                        prob = predict_probs(out / "model.pt", images[val_idx], batch_size=64, device="cpu",
                                             threads=1)["prob"].astype(np.float32)
                        scores.append(kaggle_dice(prob, masks[val_idx]))
                        print(f"lr {lr} {recipe} seed {seed} fold {fold}: {time.perf_counter() - t0:.0f}s "
                              f"oof {scores[-1].mean():.3f} health {info['training_health']}", flush=True)
                    rows.append({"lr": lr, "recipe": recipe, "seed": seed, "folds_collapsed": n_collapsed,
                                 "folds_failed": n_failed, "recoveries": recovered,
                                 "oof_kaggle_dice": float(np.concatenate(scores).mean())})
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame, n_folds: int) -> pd.DataFrame:
    groups = frame.groupby(["lr", "recipe"], sort=False)
    return pd.DataFrame({
        "seeds": groups["seed"].count(),
        "folds collapsed": groups["folds_collapsed"].sum().astype(str) + " / " + (groups["seed"].count()
                                                                                 * n_folds).astype(str),
        "recoveries": groups["recoveries"].sum(),
        "failed": groups["folds_failed"].sum(),
        "OOF Kaggle Dice mean": groups["oof_kaggle_dice"].mean().round(3),
        "min": groups["oof_kaggle_dice"].min().round(3),
        "max": groups["oof_kaggle_dice"].max().round(3),
    }).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--images", type=int, default=24, help="images per subject")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.003])
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    frame = run(args)
    print(frame.to_string(index=False))
    print(to_markdown(summarise(frame, args.folds)))
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
