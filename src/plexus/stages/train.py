"""Training stage: one (run, fold) network."""

from __future__ import annotations

import numpy as np

from plexus.data import splits
from plexus.io.contracts import check_aligned, read_folds, read_npz
from plexus.training.settings import TrainSettings


def train_stage(train_npz, folds_csv, fold: int, settings: dict, out_dir, checkpoint, *, run_name: str,
                threads: int | None = None, noise: dict | None = None, subset: dict | None = None,
                output: str = "softmax") -> dict:
    """Train model entry ``settings`` (named ``run_name``) on ``fold``.

    ``subset={"size": s, "seed": k}`` trains on whole subjects only. ``output``: the task's
    (:attr:`plexus.tasks.base.Task.output`): ``sigmoid``, one foreground logit trained on the
    masks' class 1 (arrays of any format); ``softmax``, one logit per class of the arrays.
    """
    if output not in ("sigmoid", "softmax"):
        raise ValueError(f"output must be sigmoid or softmax, got {output!r}")
    from plexus.training.loop import train_model

    train_settings = TrainSettings.from_config(settings)
    data = read_npz(train_npz)
    folds = read_folds(folds_csv)
    check_aligned(data["image_id"], folds["image_id"], train_npz, folds_csv)
    train_idx, val_idx = splits.fold_indices(folds, fold)
    if "trained" in data:  # rows predicted but never trained on (volume slices without foreground)
        train_idx = train_idx[np.asarray(data["trained"], dtype=bool)[train_idx]]
        print(f"{len(train_idx)} of the fold's training images are read by training (train_slice)")
        if len(train_idx) == 0:
            raise ValueError(f"fold {fold}: no training image has train_slice yes in {train_npz}")
    if subset is not None:
        keep = splits.subject_subset(folds["subject"].to_numpy()[train_idx], subset["size"], subset["seed"])
        train_idx = train_idx[keep]
        print(f"training-size subset: {len(train_idx)} images from "
              f"{folds['subject'].iloc[train_idx].nunique()} subjects (target {subset['size']})")
    # the task picks the head; a softmax over the classes the arrays hold (and their missing channels)
    n_classes = len(data["classes"]) if output == "softmax" and "classes" in data else None
    if output == "sigmoid" and "classes" in data and len(data["classes"]) != 2:
        raise ValueError(f"model {run_name}: a sigmoid output needs masks of one foreground class; {train_npz} "
                         f"holds {len(data['classes'])} classes ({', '.join(map(str, data['classes']))})")
    # and, when the config has regions, the (R, K) matrix of each region's labels (region_training: regions)
    regions, region_names = data.get("regions"), data.get("region_names")
    if train_settings.region_training == "regions" and regions is None:
        raise ValueError(f"model {run_name}: model setting region_training: regions needs regions in {train_npz} "
                         "(keys regions and region_names, written by preprocessing when the config has regions); "
                         "it has none")
    return train_model(data["images"], data["masks"], train_idx, val_idx, train_settings, out_dir,
                       checkpoint_path=checkpoint, run_name=run_name, fold=fold, threads=threads, noise=noise,
                       n_classes=n_classes, present=data.get("present"), regions=regions, region_names=region_names,
                       subjects=folds["subject"].to_numpy())  # the inner validation split is subject-grouped
