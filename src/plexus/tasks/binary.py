"""Task ``binary``: one foreground structure (the nerve, a lesion, a vessel tree), scored by the
Kaggle per-image Dice (an empty prediction of an empty mask scores 1).

The decision is a cutoff x minimum area (x a presence threshold, when a member has a presence
head) tuned on the members' averaged OOF probabilities at each image's own size; then the
post-processing candidates of :mod:`plexus.postprocess.selection`, each kept only when the
subject-bootstrap CI of its paired gain lies above 0. The whole procedure is cross-fitted
(each fold scored by the decision the other folds chose). The submission is run-length encoded
(:mod:`plexus.io.rle`), with the decided masks also written as PNG label maps.

Its data formats are every one whose masks have one foreground class: ``kaggle_nerve`` and a
two-class ``folders`` or ``sheet`` dataset (the default task of both). The network has one
sigmoid output (and the presence head of ``unet2head`` or ``presence_head``). The truth is each
image's mask file at its own size (:class:`plexus.data.truth.ForegroundMasks`, from the
training manifest), and the submission and label maps are written at each test image's size,
the label maps in the dataset's own mask values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import (
    check_aligned,
    load_members,
    load_oof,
    read_aligned,
    read_folds,
    read_json,
    read_manifest,
    read_npz,
    read_per_image,
    read_table,
)
from plexus.tasks.base import (
    Figure,
    Task,
    as_members,
    decision_record,
    figure_paths,
    member_oofs,
    noise_files,
    train_infos_by_model,
    train_size_files,
    tuning_record,
)


def binary_classes(config: dict) -> dict:
    """The mask values of the study's two classes (background first): the Kaggle layout's fixed
    {0, 255}, else the config's ``classes`` (:func:`plexus.config.learnt_classes`)."""
    from plexus.config import learnt_classes

    return learnt_classes(config)


def truth_of(train_csv, image_ids, classes: dict):
    """The true foreground masks of ``image_ids`` (read on demand, each at its own size)."""
    from plexus.data.truth import ForegroundMasks

    return ForegroundMasks(read_manifest(train_csv), image_ids, classes)


def test_shapes(test_csv, image_ids) -> np.ndarray:
    """``(n, 2)``: each test image's ``(height, width)`` from the test manifest, in ``image_ids`` order."""
    test = read_manifest(test_csv).set_index("image_id")
    return test.loc[[str(i) for i in image_ids], ["height", "width"]].to_numpy(np.int64)


# -------------------- tuning: cutoff x minimum area on the averaged OOF probabilities

def tune_stage(member_oofs: dict[str, list], folds_csv, train_csv, classes: dict, cutoffs, min_areas,
               grid_csv, best_json, per_image_csv, presence_thresholds=None) -> dict:
    """Tune cutoff x min-area (x presence threshold, when a member has a presence head) on
    the (averaged) OOF probabilities of one or more models; true masks are read per batch."""
    from plexus.postprocess.tuning import tune

    folds = read_folds(folds_csv)
    ids = folds["image_id"].astype(str).tolist()
    truth = truth_of(train_csv, ids, classes)
    arrays = load_members(member_oofs, ids, ("prob", "presence"))
    members, presences = arrays["prob"], arrays["presence"]
    presence = np.mean(presences, axis=0) if presences else None
    fold_of = folds["fold"].to_numpy()
    grid, tuned, per_image = tune(members, truth, cutoffs, min_areas, fold_of, presence=presence,
                                  presence_thresholds=presence_thresholds)
    fold_sizes = {int(k): int((fold_of == k).sum()) for k in np.unique(fold_of)}
    best = tuning_record({
        "task": "binary", "members": list(member_oofs), "score_name": TASK.score,
        "untuned_score": tuned.pop("untuned_score"), "score": tuned.pop("score"),
        "cross_fitted_score": cross_fitted_grid_score(grid, fold_sizes), "n_images": tuned.pop("n_images"),
    }, tuned)  # cutoff, min_area, presence_threshold (two-head members), empty_score
    per_image.insert(0, "fold", folds["fold"].to_numpy())
    per_image.insert(0, "subject", folds["subject"].to_numpy())
    per_image.insert(0, "image_id", ids)
    atomic.write_csv(grid_csv, grid)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, best)
    gate = f" presence>={best['presence_threshold']:.2f}" if "presence_threshold" in best else ""
    print(f"tuned cutoff={best['cutoff']:.3f} min_area={best['min_area']}{gate}: {best['score']:.4f} "
          f"(untuned {best['untuned_score']:.4f}, all-empty {best['empty_score']:.4f})")
    return best


# -------------------- post-processing: candidates decided on OOF, cross-fitted

BATCH = 32


def fold_tuned_settings(grid: pd.DataFrame, fold_sizes: dict[int, int]) -> dict[int, dict]:
    """For each fold k, the grid row that is best on all the *other* folds (image-weighted)."""
    from plexus.evaluation.crossfit import choose_from_fold_means

    means = {k: grid[f"score_fold{k}"].to_numpy(np.float64) for k in fold_sizes}
    out = {}
    for k, index in choose_from_fold_means(means, fold_sizes).items():
        row = grid.iloc[int(index)]
        out[k] = {"cutoff": float(row["cutoff"]), "min_area": int(row["min_area"])}
        if "presence_threshold" in grid:
            out[k]["presence_threshold"] = float(row["presence_threshold"])
    return out


def cross_fitted_grid_score(grid: pd.DataFrame, fold_sizes: dict[int, int]) -> float:
    """The grid tuning alone, cross-fitted: fold k scored at the row chosen on the other folds."""
    chosen = fold_tuned_settings(grid, fold_sizes)
    total = 0.0
    for k, setting in chosen.items():
        row = np.isclose(grid["cutoff"], setting["cutoff"]) & (grid["min_area"] == setting["min_area"])
        if "presence_threshold" in setting:
            row &= np.isclose(grid["presence_threshold"], setting["presence_threshold"])
        total += fold_sizes[k] * float(grid.loc[row, f"score_fold{k}"].iloc[0])
    return total / sum(fold_sizes.values())


def _batch_source(arrays: dict[str, list[np.ndarray]], truth, image_paths: list[str] | None):
    """``batches(needs)`` for the :class:`ScoreCache`: maps upsampled, masks read, images read per
    batch of images of one size (``truth``: :class:`plexus.data.truth.ForegroundMasks`)."""
    from plexus.data.resize import uniform_runs, upsample_mean
    from plexus.data.truth import read_gray
    from plexus.postprocess.selection import Batch

    def mean_presence(key):
        return np.mean(arrays[key], axis=0) if arrays.get(key) else None

    presence, presence_tta = mean_presence("presence"), mean_presence("presence_tta")

    def batches(needs):
        if "tta" in needs and len(arrays.get("prob_tta") or []) != len(arrays["prob"]):
            raise ValueError("the tta candidate needs flip-averaged OOF maps (prob_tta) of every member: "
                             "predict.tta is empty, or some OOF files predate it")
        if "images" in needs and image_paths is None:
            raise ValueError("the crf candidate needs the images (the train manifest)")
        for lo, hi, size in uniform_runs(truth.shapes, BATCH):
            rows = np.arange(lo, hi)
            batch = Batch(rows=rows, truths=truth[lo:hi].astype(bool))
            if "plain" in needs:
                batch.probs = upsample_mean([m[rows] for m in arrays["prob"]], size).numpy()
                batch.presence = None if presence is None else presence[rows]
            if "tta" in needs:
                batch.probs_tta = upsample_mean([m[rows] for m in arrays["prob_tta"]], size).numpy()
                batch.presence_tta = None if presence_tta is None else presence_tta[rows]
            if "images" in needs:
                batch.images = np.stack([read_gray(image_paths[r]) for r in rows])
            yield batch
    return batches


def presence_score(arrays: dict[str, list[np.ndarray]], tta: bool) -> np.ndarray:
    """Per image, the score of "has a nerve": the members' mean presence probability when
    some have a presence head, else the maximum of the averaged (low-resolution) map."""
    suffix = "_tta" if tta else ""
    if arrays.get(f"presence{suffix}"):
        return np.mean(arrays[f"presence{suffix}"], axis=0).astype(np.float64)
    maps = arrays[f"prob{suffix}"]
    return np.mean([m.astype(np.float32).reshape(len(m), -1).max(axis=1) for m in maps], axis=0).astype(np.float64)


def postprocess_stage(member_oofs: dict[str, list], folds_csv, train_csv, classes: dict, grid_csv, best_json,
                      out_json, decisions_csv, per_image_csv, options: dict, *, n_boot: int, seed: int) -> dict:
    """The post-processing candidates, decided on the OOF maps under the bootstrap rule and
    cross-fitted (see the module doc); the truth and the images (the CRF's) from ``train_csv``."""
    from plexus.data.truth import image_paths as manifest_image_paths
    from plexus.evaluation.bootstrap import bootstrap_ci
    from plexus.evaluation.crossfit import decisions_table, keep_rule
    from plexus.evaluation.metrics import per_image_metrics
    from plexus.postprocess.candidates import CRF_DEFAULTS, PostProcess
    from plexus.postprocess.selection import ScoreCache, Selection, select_many
    from plexus.postprocess.tuning import UNTUNED_CUTOFF, UNTUNED_PRESENCE

    folds = read_folds(folds_csv)
    ids = folds["image_id"].astype(str).tolist()
    truth = truth_of(train_csv, ids, classes)
    arrays = load_members(member_oofs, ids, ("prob", "presence", "prob_tta", "presence_tta"))
    image_paths = manifest_image_paths(read_manifest(train_csv), ids)
    best, grid = read_json(best_json), read_table(grid_csv)
    fold_of = folds["fold"].to_numpy()
    subjects = folds["subject"].to_numpy()
    fold_sizes = {int(k): int((fold_of == k).sum()) for k in np.unique(fold_of)}

    cache = ScoreCache(_batch_source(arrays, truth, image_paths), len(ids), crf_settings=options.get("crf"))
    rows = np.arange(len(ids))
    base = PostProcess(cutoff=float(best["cutoff"]), min_area=int(best["min_area"]),
                       presence_threshold=best.get("presence_threshold"))
    # the plain model output (tuning's untuned reference: the gate at 0.5 for two-head members)
    untuned = PostProcess(cutoff=UNTUNED_CUTOFF, presence_threshold=UNTUNED_PRESENCE if arrays["presence"] else None)
    selections = [Selection(rows, base)] + [
        Selection(rows[fold_of != k], PostProcess(**setting))
        for k, setting in fold_tuned_settings(grid, fold_sizes).items()]
    cache.ensure([untuned, *(s.current for s in selections)])  # one first pass for all of them
    select_many(cache, selections, subjects, options, n_boot=n_boot, seed=seed)
    final, held_out = selections[0], dict(zip(fold_sizes, selections[1:]))
    cache.ensure(s.current for s in held_out.values())

    honest = np.empty(len(ids))
    for k, selection in held_out.items():
        honest[fold_of == k] = cache.scores[selection.current][fold_of == k]
    counts = cache.counts[final.current]
    metrics = per_image_metrics(counts[:, 0], counts[:, 1], counts[:, 2])
    per_image = pd.DataFrame({"image_id": ids, "subject": subjects, "fold": fold_of,
                              "untuned": cache.scores[untuned], "tuned": cache.scores[base],
                              "postprocessed": cache.scores[final.current],
                              "cross_fitted": honest,
                              **{m: metrics[m] for m in ("dice", "iou", "sensitivity", "precision")},
                              "true_area": counts[:, 2], "pred_area": counts[:, 1],
                              "presence_score": presence_score(arrays, final.current.tta)})
    ci = bootstrap_ci(per_image, value="cross_fitted", n_boot=n_boot, seed=seed)
    result = decision_record({
        "task": "binary",
        "members": list(member_oofs),
        "score_name": TASK.score,
        "pipeline": final.current.to_dict(),
        "untuned_score": float(per_image["untuned"].mean()),
        "tuned_score": float(per_image["tuned"].mean()),
        "score": float(per_image["postprocessed"].mean()),
        "cross_fitted_score": ci["mean"], "cross_fitted_ci": [ci["low"], ci["high"]],
        "rule": keep_rule(float(options.get("min_gain", 0.0))),
        "decisions": final.decisions,
    }, {
        "needs_components": final.current.needs_components,
        "cross_fitted_grid_score": cross_fitted_grid_score(grid, fold_sizes),
        "folds": {str(k): {"pipeline": s.current.to_dict(), "score": float(honest[fold_of == k].mean())}
                  for k, s in held_out.items()},
        "crf_settings": {**CRF_DEFAULTS, **(options.get("crf") or {})} if final.current.crf else None,
        "passes": cache.passes,
    })
    atomic.write_json(out_json, result)
    atomic.write_csv(decisions_csv, decisions_table(final.decisions))
    atomic.write_csv(per_image_csv, per_image)
    print(f"post-processing {final.current}: {result['score']:.4f} (tuned {result['tuned_score']:.4f}); "
          f"cross-fitted {ci['mean']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]")
    return result


# -------------------- submission: test probabilities -> the decided pipeline -> RLE CSV

def submission_stage(member_means, postprocess_json, csv_path, json_path, batch_size: int = 64,
                     manifest_csv=None) -> dict:
    """Apply ``results/postprocess/{name}.json``'s pipeline once to the members' averaged maps,
    each upsampled to its test image's size (``manifest_csv``, the test manifest).

    The presence gate (two-head members) uses the presence probability averaged over
    folds (``mean.npz``) and over the members that have one, as in tuning. A ``tta``
    pipeline reads the flip-averaged arrays; a ``crf`` one the test images of the manifest.
    """
    from plexus.data.truth import image_paths as manifest_image_paths
    from plexus.postprocess.candidates import PostProcess
    from plexus.postprocess.submission import encode_masks, submission_frame, write_submission

    decided = read_json(postprocess_json)
    pipeline = PostProcess(**decided["pipeline"])
    suffix = "_tta" if pipeline.tta else ""
    runs = read_aligned(member_means)
    missing = [str(path) for path, run in zip(member_means, runs) if f"prob{suffix}" not in run]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no 'prob{suffix}' array for the decided pipeline; "
                         "rerun the test predictions with predict.tta set")
    presences = [r[f"presence{suffix}"] for r in runs if f"presence{suffix}" in r]
    presence = np.mean(presences, axis=0) if presences else None
    ids = runs[0]["image_id"].astype(str)
    image_paths = manifest_image_paths(read_manifest(manifest_csv), ids) if pipeline.crf else None
    pixels = encode_masks([r[f"prob{suffix}"] for r in runs], pipeline.cutoff, pipeline.min_area,
                          shape=test_shapes(manifest_csv, ids), batch_size=batch_size, pipeline=pipeline,
                          presence=presence, image_paths=image_paths, crf_settings=decided.get("crf_settings"))
    frame = submission_frame(runs[0]["image_id"], pixels)
    summary = write_submission(frame, csv_path)
    summary.update(pipeline=pipeline.to_dict(), members=decided.get("members"))
    atomic.write_json(json_path, summary)
    print(f"{summary['rows']} rows, {summary['empty']} empty, {summary['bytes']} bytes; {pipeline}")
    return summary


# -------------------- the results table with subject-bootstrap CIs

def summary_stage(
    names, kinds, members, best_jsons, per_image_csvs, csv_path, md_path, *, n_boot, seed, postprocess_jsons=None,
    train_infos: dict[str, list] | None = None, rater2: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``train_infos`` maps each model to its folds' ``train_info.json`` paths (the training-health column);
    ``rater2``: the second rater's per-image scores, when the sheet has ``mask_rater2``
    (:func:`plexus.report.tables.with_second_rater`)."""
    from plexus.report import tables

    postprocess_jsons = postprocess_jsons or [None] * len(names)
    infos = {model: [read_json(path) for path in paths] for model, paths in (train_infos or {}).items()}

    def health(member_list) -> str:
        if not all(m in infos for m in member_list):
            return ""
        return tables.training_health({m: infos[m] for m in member_list})

    entries = {
        name: {"kind": kind, "members": member_list, "best": read_json(best),
               "per_image": read_per_image(per_image),
               "postprocess": read_json(decided) if decided else None,
               "training_health": health(member_list)}
        for name, kind, member_list, best, per_image, decided in zip(
            names, kinds, members, best_jsons, per_image_csvs, postprocess_jsons)
    }
    table = tables.results_table(entries, n_boot=n_boot, seed=seed)
    if rater2 is not None:
        table = tables.with_second_rater(table, entries, rater2)
    atomic.write_csv(csv_path, table)
    atomic.write_text(md_path, tables.to_markdown(table) + "\n")
    print(tables.to_markdown(table))
    return table


# -------------------- robustness: noise and training-set size, at the tuned setting

def score_at(members, truth, best: dict, presence=None) -> pd.DataFrame:
    """Per-image metrics of probabilities at the tuned setting (the presence gate included)."""
    from plexus.postprocess.tuning import cutoff_counts, gate, metrics_at

    counts = gate(cutoff_counts(members, truth, [best["cutoff"]]), presence, best.get("presence_threshold"))
    return metrics_at(counts, best["cutoff"], best["min_area"])


def fold_scores(per_image: pd.DataFrame, folds: np.ndarray) -> pd.DataFrame:
    """Mean Kaggle Dice and plain Dice per fold."""
    frame = per_image.assign(fold=np.asarray(folds))
    out = frame.groupby("fold").agg(kaggle_dice=("kaggle_dice", "mean"), dice=("dice", "mean"),
                                    n_images=("kaggle_dice", "size"))
    return out.reset_index()


def noise_scores_stage(
    predictions: dict[tuple[str, float], str], train_csv, classes: dict, best_json, out_csv
) -> pd.DataFrame:
    """``scores.csv``: one row per (condition, sigma, fold)."""
    best = json.loads(Path(best_json).read_text())
    rows = []
    for (condition, sigma), path in sorted(predictions.items()):
        data = read_npz(path)
        truth = truth_of(train_csv, data["image_id"].astype(str), classes)
        per_image = score_at([data["prob"]], truth, best, data.get("presence"))
        scores = fold_scores(per_image, data["fold"])
        rows.append(scores.assign(condition=condition, sigma=float(sigma)))
    table = pd.concat(rows)[["condition", "sigma", "fold", "kaggle_dice", "dice", "n_images"]]
    atomic.write_csv(out_csv, table)
    print(table.groupby(["condition", "sigma"])[["kaggle_dice", "dice"]].mean().to_string())
    return table


def train_size_scores_stage(
    runs: dict[tuple, list], full_run: list, folds_csv, train_csv, classes: dict, best_json, out_csv
) -> pd.DataFrame:
    """``scores.csv``: one row per (size, seed, fold), plus ``size="full"`` rows.

    ``runs[(size, seed)]`` lists that run's OOF files by fold; ``full_run`` the main
    model's (trained on the whole training part). ``n_train`` is recomputed with
    :func:`plexus.data.splits.subject_subset`, the same draw the training job made.
    """
    from plexus.data import splits

    best = json.loads(Path(best_json).read_text())
    folds = read_folds(folds_csv)
    ids = folds["image_id"].astype(str).tolist()
    truth = truth_of(train_csv, ids, classes)
    rows = []
    entries = [((f"{size:g}", seed), paths) for (size, seed), paths in sorted(runs.items())]
    entries.append((("full", None), full_run))
    for (size, seed), paths in entries:
        per_image = score_at([load_oof(paths, ids)], truth, best, load_oof(paths, ids, key="presence"))
        scores = fold_scores(per_image, folds["fold"])
        n_train = []
        for fold in scores["fold"]:
            train_idx, _ = splits.fold_indices(folds, fold)
            if size == "full":
                n_train.append(len(train_idx))
            else:
                subjects = folds["subject"].to_numpy()[train_idx]
                n_train.append(len(splits.subject_subset(subjects, float(size), int(seed))))
        rows.append(scores.assign(size=size, seed=seed if seed is not None else -1, n_train=n_train))
    table = pd.concat(rows)[["size", "seed", "fold", "n_train", "kaggle_dice", "dice", "n_images"]]
    atomic.write_csv(out_csv, table)
    print(table.groupby("size")[["n_train", "kaggle_dice", "dice"]].mean().to_string())
    return table


def missing_channel_stage(model_pts: list, train_npz, folds_csv, train_csv, summary_json, best_json, classes: dict,
                          out_csv, *, batch_size: int = 64, threads: int | None = None) -> pd.DataFrame:
    """``scores.csv``: one row per (removed channel, fold): the Kaggle Dice and plain Dice of the OOF
    predictions with that input channel removed at evaluation ("none": all kept), at the tuned
    setting (the presence gate included); ``class`` names the foreground (the figure's group)."""
    from plexus.data import splits
    from plexus.inference.predict import predict_probs

    data, folds = read_npz(train_npz), read_folds(folds_csv)
    check_aligned(data["image_id"], folds["image_id"], train_npz, folds_csv)
    channels = json.loads(Path(summary_json).read_text())["input_channels"]
    best = read_json(best_json)
    ids = folds["image_id"].astype(str).tolist()
    truth = truth_of(train_csv, ids, classes)
    present = data.get("present")
    rows = []
    for removed in [None, *range(len(channels))]:
        probs = np.empty((len(ids), *data["images"].shape[-2:]), np.float16)
        presence = None
        for fold, model_pt in enumerate(model_pts):
            _, val = splits.fold_indices(folds, fold)
            out = predict_probs(model_pt, data["images"][val], present=None if present is None else present[val],
                                drop_channel=removed, batch_size=batch_size, threads=threads)
            probs[val] = out["prob"]
            if out.get("presence") is not None:
                presence = np.empty(len(ids), np.float32) if presence is None else presence
                presence[val] = out["presence"]
        scores = fold_scores(score_at([probs], truth, best, presence), folds["fold"].to_numpy())
        rows.append(scores.assign(removed="none" if removed is None else channels[removed],
                                  **{"class": list(classes)[1]}))
    table = pd.concat(rows)[["removed", "class", "fold", "kaggle_dice", "dice", "n_images"]]
    atomic.write_csv(out_csv, table)
    print(table.groupby("removed", sort=False)[["kaggle_dice", "dice"]].mean().to_string())
    return table


# -------------------- figures: read files under results/, render with plexus.report.figures

def tuning_stage(grid_csv, best_json, name, heatmap_paths, min_area_paths, style=None) -> None:
    """Heatmap and min-area curves; with a tuned presence gate, the slice at the chosen threshold."""
    from plexus.report import figures

    grid, best = read_table(grid_csv), read_json(best_json)
    if "presence_threshold" in grid:
        grid = grid[np.isclose(grid["presence_threshold"], best["presence_threshold"])]
        name = f"{name} (presence ≥ {best['presence_threshold']:g})"
    figures.save(figures.tuning_heatmap(grid, best, name, style), heatmap_paths)
    figures.save(figures.score_vs_min_area(grid, best, name, style), min_area_paths)


def noise_stage(scores_csv, paths, style=None) -> None:
    from plexus.report import figures

    figures.save(figures.noise_figure(read_table(scores_csv), style), paths)


def missing_channel_figure_stage(scores_csv, paths, style=None) -> None:
    """The Kaggle Dice with each input channel removed (the classes task's grouped bars)."""
    from plexus.report import figures
    from plexus.report.class_figures import missing_channel_figure

    scores = read_table(scores_csv)
    fig = missing_channel_figure(scores.assign(dice=scores["kaggle_dice"]), style,
                                 title="Kaggle Dice with one input channel removed at evaluation (OOF)")
    figures.save(fig, paths)


def train_size_stage(scores_csv, paths, style=None) -> None:
    from plexus.report import figures

    scores = read_table(scores_csv)
    figures.save(figures.train_size_figure(scores, style), paths)


def areas_stage(per_image_csv, best_json, name, paths, style=None) -> None:
    from plexus.report import figures

    best = read_json(best_json)
    fig = figures.area_histogram(read_per_image(per_image_csv), best["min_area"], style,
                                 title=f"{name}: mask areas, true vs predicted (OOF)")
    figures.save(fig, paths)


def decision_text(pipeline) -> str:
    """A short description of a decided pipeline, for a panel title: ``final: p>0.5, area>=1000, gate>=0.5``."""
    parts = [f"p>{pipeline.cutoff:g}", f"area>={pipeline.min_area}"]
    if pipeline.presence_threshold is not None:
        parts.append(f"gate>={pipeline.presence_threshold:g}")
    parts += [step for step in ("tta", "crf", "otsu", "fill_holes", "largest_only") if getattr(pipeline, step)]
    if pipeline.hysteresis_high is not None:
        parts.append(f"hysteresis {pipeline.hysteresis_high:g}")
    if pipeline.remove_below:
        parts.append(f"components>={pipeline.remove_below}")
    return "final: " + ", ".join(parts)


def qualitative_stage(per_image_csv, decision_json, train_csv, classes: dict, oof_npzs, name, paths,
                      style=None) -> None:
    """Best, median and worst OOF images (with a foreground) of one model or ensemble, by the Kaggle
    Dice of its final decision (``results/postprocess/{name}_per_image.csv``), each drawn at its own
    size with the mask the decided pipeline makes of it and the pixels that pipeline removed from
    ``p > cutoff``. ``oof_npzs``: one model's fold files, or ``{member: fold files}`` of an ensemble,
    whose maps (and presence) are averaged as the tuning and the submission average them."""
    from plexus.data.resize import upsample_mean
    from plexus.data.truth import image_paths as manifest_image_paths
    from plexus.data.truth import read_gray
    from plexus.io.rle import decode
    from plexus.postprocess.candidates import PostProcess
    from plexus.postprocess.submission import encode_masks
    from plexus.report import figures

    per_image, decided = read_per_image(per_image_csv), read_json(decision_json)
    picks = figures.pick_examples(per_image.rename(columns={"postprocessed": "kaggle_dice"}))
    ids = [i for label in picks for i in picks[label]]
    labels = [label for label in picks for _ in picks[label]]
    pipeline = PostProcess(**decided["pipeline"])
    suffix = "_tta" if pipeline.tta else ""
    arrays = load_members(as_members(name, oof_npzs), ids, (f"prob{suffix}", f"presence{suffix}"))
    presence = np.mean(arrays[f"presence{suffix}"], axis=0) if arrays[f"presence{suffix}"] else None
    image_paths = manifest_image_paths(read_manifest(train_csv), ids)
    truth = truth_of(train_csv, ids, classes)
    pixels = encode_masks(arrays[f"prob{suffix}"], pipeline.cutoff, pipeline.min_area, shape=truth.shapes,
                          pipeline=pipeline, presence=presence, image_paths=image_paths,
                          crf_settings=decided.get("crf_settings"))
    shapes = [tuple(int(v) for v in shape) for shape in truth.shapes]
    finals = [decode(text, shape) for text, shape in zip(pixels, shapes)]
    members = [m.astype(np.float32) for m in arrays[f"prob{suffix}"]]
    raws = [upsample_mean([m[k:k + 1] for m in members], shape).numpy()[0] > pipeline.cutoff
            for k, shape in enumerate(shapes)]
    dices = per_image.set_index("image_id").loc[ids, "postprocessed"].to_numpy()
    fig = figures.qualitative_panel([read_gray(p) for p in image_paths],
                                    [truth.read(k) for k in range(len(ids))], finals, dices, ids, labels,
                                    decision_text(pipeline), style, raws=raws,
                                    title=f"{name}: best, median and worst OOF images with a foreground, "
                                          "at its final decision")
    figures.save(fig, paths)


# --------------------------------------------------------------------------- label maps of the submission


def write_binary_label_maps(frame: pd.DataFrame, out_dir, shapes: dict, values=(0, 255)) -> int:
    """The submission's masks as PNG label maps in the dataset's mask ``values`` (background,
    foreground), one per image, each at its size (``shapes``: image id -> ``(height, width)``)."""
    from plexus.io.rle import decode
    from plexus.postprocess.multiclass import write_label_map

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id, pixels in zip(frame.iloc[:, 0].astype(str), frame.iloc[:, 1].fillna("").astype(str)):
        mask = decode(pixels, tuple(int(v) for v in shapes[image_id]))
        write_label_map(out_dir / f"{image_id}.png", mask.astype(np.uint8), list(values))
    return len(frame)


# --------------------------------------------------------------------------- the task


class BinaryTask(Task):
    def units(self, settings: dict) -> tuple[list[str], np.ndarray]:
        return [list(settings["classes"])[1]], np.asarray([[False, True]])

    def decided_unit_masks(self, settings: dict, members: dict[str, list[str]], manifest, image_ids, decision: dict):
        from plexus.data.resize import upsample_mean
        from plexus.data.truth import image_paths as manifest_image_paths
        from plexus.data.truth import read_gray
        from plexus.postprocess.candidates import PostProcess

        ids = list(image_ids)
        pipeline = PostProcess(**decision["pipeline"])
        suffix = "_tta" if pipeline.tta else ""
        arrays = load_members(members, ids, (f"prob{suffix}", f"presence{suffix}"))
        if len(arrays[f"prob{suffix}"]) != len(members):
            raise ValueError(f"no 'prob{suffix}' array in the prediction files of every member of {list(members)}")
        presence = np.mean(arrays[f"presence{suffix}"], axis=0) if arrays[f"presence{suffix}"] else None
        sizes = manifest.set_index("image_id").loc[ids, ["height", "width"]].astype(int).to_numpy()
        paths = manifest_image_paths(manifest, ids) if pipeline.crf else None
        probs = [m.astype(np.float32) for m in arrays[f"prob{suffix}"]]
        for k, (h, w) in enumerate(sizes):
            prob = upsample_mean([m[k:k + 1] for m in probs], (int(h), int(w))).numpy()[0]
            image = read_gray(paths[k]) if paths else None
            yield pipeline.apply(prob, None if presence is None else float(presence[k]), image,
                                 decision.get("crf_settings"))[None]

    def unit_values(self, settings: dict) -> list[int]:
        return [list(settings["classes"].values())[1]]

    def settings(self, stage: str, config: dict) -> dict:
        from plexus.config import grid_values

        tuning, postprocess, summary = config["tuning"], config["postprocess"], config["summary"]
        classes = binary_classes(config)  # the truth's mask values: every stage that reads a mask
        return {
            "tune": lambda: {"cutoffs": grid_values(tuning["cutoffs"]),
                             "min_areas": grid_values(tuning["min_areas"], integer=True),
                             "presence_thresholds": grid_values(tuning["presence_thresholds"]), "classes": classes},
            "postprocess": lambda: {"options": {k: postprocess[k] for k in
                                                ("candidates", "component_sizes", "hysteresis_highs", "crf",
                                                 "min_gain")},
                                    "n_boot": postprocess["bootstrap_samples"], "seed": postprocess["seed"],
                                    "classes": classes},
            "submission": lambda: {"batch_size": config["predict"]["batch_size"], "classes": classes},
            "volumes": lambda: {"classes": classes},
            "summary_table": lambda: {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"],
                                      "classes": classes},
            "comparison": lambda: {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"]},
            "noise_scores": lambda: {"classes": classes},
            "train_size_scores": lambda: {"classes": classes},
            "missing_channel_scores": lambda: {"classes": classes, "batch_size": config["predict"]["batch_size"]},
            "figure_qualitative": lambda: {"classes": classes},
        }.get(stage, dict)()

    def config_errors(self, config: dict) -> list[str]:
        errors = super().config_errors(config)
        if config["data"]["format"] == "kaggle_nerve":
            if config["robustness"]["missing_channel"]["enabled"]:
                errors.append("robustness.missing_channel.enabled: the study removes each input channel in turn; "
                              "the Kaggle layout has one (a gray image)")
            return errors
        classes, ignore = config["classes"], config.get("ignore") or []
        if len(classes) != 2:
            errors.append(f"classes: task 'binary' reads masks of one foreground class (two classes, the "
                          f"background first); these classes are {', '.join(classes)} (set task: classes)")
        if ignore:
            errors.append(f"ignore: task 'binary' has no ignored classes ({', '.join(ignore)}); set task: classes, "
                          "whose losses and scores leave ignored pixels out")
        if config.get("regions"):
            errors.append("regions: task 'binary' has no regions (set task: regions)")
        return errors

    def missing_channel_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        missing_channel_stage(list(i.models), i.data, i.folds, i.train, i.summary, i.best, s["classes"], job.output[0],
                              batch_size=s["batch_size"], threads=job.threads)

    def tune(self, job) -> None:
        i, o, s = job.input, job.output, job.params.settings
        tune_stage(member_oofs(job), i.folds, i.train, s["classes"], s["cutoffs"], s["min_areas"], o.grid, o.best,
                   o.per_image, presence_thresholds=s["presence_thresholds"])

    def postprocess(self, job) -> None:
        i, o, s = job.input, job.output, job.params.settings
        postprocess_stage(member_oofs(job), i.folds, i.train, s["classes"], i.grid, i.best, o.json, o.decisions,
                          o.per_image, s["options"], n_boot=s["n_boot"], seed=s["seed"])

    def submission(self, job) -> None:
        from plexus.labels import class_table

        i, o, s = job.input, job.output, job.params.settings
        submission_stage(list(i.means), i.decision, o.csv, o.summary, batch_size=s["batch_size"], manifest_csv=i.test)
        frame = pd.read_csv(o.csv, dtype=str, keep_default_na=False)
        shapes = dict(zip(frame.iloc[:, 0], test_shapes(i.test, frame.iloc[:, 0])))
        write_binary_label_maps(frame, o.labelmaps, shapes, class_table(s["classes"])[1])

    def summary_table(self, job) -> None:
        """The results table; the second rater (``mask_rater2``) beside every entry on the images it rated."""
        from plexus.evaluation.raters import foreground_matrix, rater2_frame

        i, o, p = job.input, job.output, job.params
        classes = p.settings["classes"]
        rater2 = rater2_frame(read_manifest(i.train), classes, foreground_matrix(2), list(classes)[1:], "class")
        summary_stage(p.names, p.kinds, p.members, list(i.best), list(i.per_image), o.csv, o.md,
                      n_boot=p.settings["n_boot"], seed=p.settings["seed"], postprocess_jsons=list(i.postprocess),
                      train_infos=train_infos_by_model(job), rater2=rater2)

    def comparison(self, job) -> None:
        from plexus.stages.comparison import comparison_stage

        i, o, p = job.input, job.output, job.params
        paths = {"comparison_csv": o.csv, "comparison_md": o.md, "pairwise_csv": o.pairwise_csv,
                 "pairwise_md": o.pairwise_md, "figure": [o.png, o.pdf],
                 "pairwise_figure": [o.pairwise_png, o.pairwise_pdf],
                 "per_image_figure": [o.per_image_png, o.per_image_pdf]}
        comparison_stage(p.names, p.kinds, p.members, list(i.per_image), dict(zip(p.models, i.train_info)), paths,
                         n_boot=p.settings["n_boot"], seed=p.settings["seed"], style=p.style)

    def noise_scores(self, job) -> None:
        noise_scores_stage(noise_files(job), job.input.train, job.params.settings["classes"], job.input.best,
                           job.output[0])

    def train_size_scores(self, job) -> None:
        runs, full = train_size_files(job)
        train_size_scores_stage(runs, full, job.input.folds, job.input.train, job.params.settings["classes"],
                                job.input.best, job.output[0])

    def figure_tuning(self, job) -> None:
        i, name, style = job.input, job.wildcards.name, job.params.style
        tuning_stage(i.grid, i.best, name, figure_paths(job, "heatmap"), figure_paths(job, "min_area"), style)
        areas_stage(i.per_image, i.best, name, figure_paths(job, "areas"), style)

    def figure_qualitative(self, job) -> None:
        i = job.input
        qualitative_stage(i.decision_per_image, i.decision, i.train, job.params.settings["classes"], member_oofs(job),
                          job.wildcards.model, figure_paths(job, "panel"), job.params.style)

    def figure_study(self, study: str, job) -> None:
        draw = {"noise": noise_stage, "train_size": train_size_stage,
                "missing_channel": missing_channel_figure_stage}[study]
        draw(job.input.scores, [job.output.png, job.output.pdf], job.params.style)


TASK = BinaryTask(
    name="binary",
    formats=("kaggle_nerve", "folders", "sheet", "volumes"),
    output="sigmoid",
    score="Kaggle Dice",
    figures={
        "figure_tuning": (
            Figure("heatmap", "tuning/{name}_heatmap", "tuning_heatmap.rst", "Tuning"),
            Figure("min_area", "tuning/{name}_min_area", "tuning_min_area.rst", "Tuning"),
            Figure("areas", "areas/{name}", "areas.rst", "Tuning"),
        ),
        "figure_qualitative": (Figure("panel", "qualitative/{model}", "qualitative.rst", "Predictions"),),
    },
    studies=("noise", "train_size", "missing_channel"),
    tta=True,
)
