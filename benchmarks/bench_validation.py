"""Validation that costs nothing unless it is used (issue 26): the old default against the new.

The embedded X-ray-like sheet example (:func:`plexus.data.synthetic_semantic.generate_multiclass`:
two foreground classes, ``nerve`` and ``artery``, 16-bit images of mixed sizes) sized like the
real nerve/vessel ultrasound set of the issue (about 200 training images, 3 subject-grouped
folds), read through the workflow's own manifest and arrays code at 64x64, and the example's
``unet`` (base 8, depth 3, Adam at 3e-3, cross-entropy + Dice, its augmentation) trained on every
fold with the schema's recipe (poly decay, clipping, the collapse guard, no early stopping):

* ``inner``: the previous default, ``validation: inner``: 15% of each fold's training subjects
  held out for a per-epoch validation that no decision reads;
* ``auto``: the new default: the same, but no image is held out (no decision reads it), the
  out-of-fold images are monitored;
* with ``--refit``, also ``refit``: early stopping (``patience``) on the inner split, then
  ``refit: true`` (retrain on the whole part for the chosen epochs), and ``stop``: the same
  early stopping without the refit.

The OOF score is each image's Dice per class on the argmax map (1 when the class is in neither
prediction nor truth), pooled over the folds; CIs are the subject-level percentile bootstrap
(:func:`plexus.evaluation.bootstrap.bootstrap_ci`, 2,000 draws). ``n_train`` is the images
trained on in each fold (``train_info.json``).

Usage: ``nice python benchmarks/bench_validation.py [--subjects 17] [--images 12] [--epochs 30]
[--folds 3] [--seeds 1 2 3] [--refit]``; prints Markdown tables and writes nothing outside a
temporary folder. The numbers in docs/benchmarks.md came from the command given there.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.data.dataset import build_manifest, load_arrays
from plexus.data.sheet import read_sheet
from plexus.data.splits import fold_indices, make_folds
from plexus.data.synthetic_semantic import MULTICLASS_VALUES, generate_multiclass
from plexus.evaluation.bootstrap import bootstrap_ci
from plexus.evaluation.multiclass import scores_frame
from plexus.inference.predict import predict_probs
from plexus.training.loop import train_model
from plexus.training.settings import TrainSettings

SIZE = (64, 64)
UNET = {"arch": "unet", "input_size": list(SIZE), "base_channels": 8, "depth": 3, "dropout": 0.0, "loss": "ce_dice",
        "optimizer": "adam", "lr": 0.003, "batch_size": 8,
        "augment": {"hflip": 0.5, "vflip": 0.0, "shift": 0.05, "rotate": 5.0, "shear": 0.0, "zoom": 0.05}}
RECIPES = {"inner": {"validation": "inner"}, "auto": {"validation": "auto"}}
REFIT = {"stop": {"patience": 5}, "refit": {"patience": 5, "refit": True}}


def load(root: Path, n_subjects: int, per_subject: int) -> dict:
    """The training arrays of a freshly generated multiclass sheet set, as the workflow reads them."""
    generate_multiclass(root, n_subjects=n_subjects, images_per_subject=per_subject, n_test_subjects=1,
                        test_images_per_subject=1, seed=0)
    classes = dict(MULTICLASS_VALUES)
    sheet = read_sheet(root / "sheet.tsv", channels=["image"])
    train, _, summary = build_manifest(sheet, channels=["image"], classes=classes, threads=2)
    depths = {c: summary["depths"][c] for c in summary["channels"]}
    arrays = load_arrays(train, depths=depths, size=SIZE, classes=classes, threads=2)
    arrays["subject"] = train["subject"].astype(str).to_numpy()
    arrays["frame"] = train
    return arrays


def run(arrays: dict, recipe: str, overrides: dict, seed: int, epochs: int, n_folds: int, work: Path) -> tuple:
    folds = make_folds(arrays["frame"], n_folds, seed=42)
    settings = TrainSettings.from_config({**UNET, **overrides, "epochs": epochs, "seed": seed})
    rows, n_train = [], []
    for fold in range(n_folds):
        train_idx, val_idx = fold_indices(folds, fold)
        out = work / f"{recipe}_{seed}_{fold}"
        train_model(arrays["images"], arrays["masks"], train_idx, val_idx, settings, out,
                    checkpoint_path=work / "ck.pt", n_classes=3, present=arrays["present"],
                    subjects=arrays["subject"], device="cpu", threads=1, log=lambda s: None)
        n_train.append(json.loads((out / "train_info.json").read_text())["n_train"])
        prob = predict_probs(out / "model.pt", arrays["images"][val_idx], present=arrays["present"][val_idx],
                             device="cpu", threads=1)["prob"]
        pred = prob.astype(np.float32).argmax(1)
        frame = scores_frame(arrays["image_id"][val_idx], pred, arrays["masks"][val_idx],
                             ["background", "nerve", "artery"])
        frame["subject"] = frame["image_id"].map(dict(zip(arrays["image_id"], arrays["subject"], strict=True)))
        rows.append(frame)
    return pd.concat(rows, ignore_index=True), n_train


def summarise(scores: pd.DataFrame) -> dict:
    out = {}
    for name, part in scores.groupby("class", sort=False):
        ci = bootstrap_ci(part, value="dice", group="subject")
        out[name] = f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=17)
    parser.add_argument("--images", type=int, default=12, help="training images per subject")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--refit", action="store_true", help="also early stopping with and without refit")
    args = parser.parse_args()
    recipes = {**RECIPES, **(REFIT if args.refit else {})}
    t0 = time.perf_counter()
    table, pooled = [], {name: [] for name in recipes}
    with tempfile.TemporaryDirectory() as tmp:
        arrays = load(Path(tmp) / "data", args.subjects, args.images)
        print(f"{len(arrays['image_id'])} training images of {len(set(arrays['subject']))} subjects, "
              f"{args.folds} folds, {args.epochs} epochs")
        for seed in args.seeds:
            for recipe, overrides in recipes.items():
                t = time.perf_counter()
                scores, n_train = run(arrays, recipe, overrides, seed, args.epochs, args.folds, Path(tmp))
                scores["seed"] = seed
                pooled[recipe].append(scores)
                table.append({"recipe": recipe, "seed": seed, "n_train per fold": " / ".join(map(str, n_train)),
                              **{f"OOF Dice {k}": v for k, v in summarise(scores).items()},
                              "seconds": round(time.perf_counter() - t)})
                print(table[-1], flush=True)
    print(pd.DataFrame(table).to_markdown(index=False))
    print()
    print("Mean over seeds (per-image Dice, CI over subjects with the seeds pooled):")
    rows = []
    for recipe, frames in pooled.items():
        scores = pd.concat(frames, ignore_index=True)
        scores["subject"] = scores["subject"].astype(str)
        rows.append({"recipe": recipe, **{f"OOF Dice {k}": v for k, v in summarise(scores).items()}})
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
