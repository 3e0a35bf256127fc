"""Task ``instances``: nuclei instance segmentation (format ``dsb2018``), scored by DSB2018 mean AP.

The data path is the sheet formats' (:mod:`plexus.stages.data`), after the ``convert`` rule's
:func:`plexus.data.dsb2018.nuclei_sheet_stage`
turns the DSB2018 folders into a sample sheet whose ``mask`` is a class-index training target
(0 background, 1 nucleus, 2 boundary when ``instances.boundary``) and whose extra column
``instances`` is the merged instance label map (uint16 PNG, 0 background, 1..N nuclei) kept for
evaluation. Training and prediction are the shared stages.

From probabilities to instances (:mod:`plexus.postprocess.instances`): the members' softmax
probabilities are upsampled to each image's own size and averaged; the foreground probability is
``1 - p_background`` and, with the boundary class, ``p_boundary`` can seed the split of touching
nuclei. A *candidate* is an :class:`~plexus.postprocess.instances.InstanceSettings` (threshold,
watershed split, minimum size) and a flag ``boundary``: split by the boundary channel (the
watershed is then off). The candidates are the config's grid (``instances:``) without the
boundary flag, then, when the boundary class exists, each non-watershed setting with it; the
baseline (fixed cutoff 0.5, 8-connected components, no split, no size filter) is always one of
them, so the tuned OOF score is never below the baseline's. Ties go to the first candidate.

The honest estimate is cross-fitted: each fold's images are labelled with the candidate chosen on
the other folds' images (as :func:`~plexus.postprocess.instances.cross_fitted_instances`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.data.dsb2018 import read_instance_map, write_instance_map
from plexus.io import atomic
from plexus.io.contracts import (
    check_aligned,
    member_arrays,
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
    figure_paths,
    member_oofs,
    noise_files,
    tuning_record,
    write_submission_summary,
)

#: The table's metrics (columns of per_image.csv) and their labels.
TABLE_METRICS = {"ap_baseline": "AP baseline", "ap": "AP tuned", "ap_cross_fitted": "AP cross-fitted",
                 "f1": "F1@0.5", "pixel_dice": "pixel Dice"}


# --------------------------------------------------------------------------- candidates


def candidate_grid(options: dict, has_boundary: bool) -> list[tuple]:
    """``(InstanceSettings, boundary)`` pairs from the config's ``instances`` section, in tie-break order.

    The grid of :func:`plexus.postprocess.instances.instance_grid` (``boundary`` False), then
    with the boundary class each of its settings without the watershed split with ``boundary``
    True; the baseline (cutoff 0.5, no split, no size filter) first when the grid lacks it.
    """
    from plexus.postprocess.instances import InstanceSettings, instance_grid

    def grid(watershed):
        return list(instance_grid(cutoffs=options["cutoffs"], otsu=options["otsu"],
                                  hysteresis_pairs=[tuple(p) for p in options["hysteresis"]],
                                  min_sizes=options["min_sizes"], min_distances=options["min_distances"],
                                  watershed=watershed))

    candidates = [(s, False) for s in grid(options["watershed"])]
    if has_boundary:
        candidates += [(s, True) for s in grid((False,))]
    if (InstanceSettings(), False) not in candidates:
        candidates.insert(0, (InstanceSettings(), False))
    return candidates


def baseline_index(candidates: Sequence[tuple]) -> int:
    from plexus.postprocess.instances import InstanceSettings

    return candidates.index((InstanceSettings(), False))


def candidate_record(settings, boundary: bool) -> dict:
    """What ``best.json`` and ``grid.csv`` store of a candidate: its settings and the boundary flag."""
    return {**settings.to_dict(), "boundary": bool(boundary)}


def candidate_of(record: dict) -> tuple:
    """Inverse of :func:`candidate_record` (also of a ``grid.csv`` row's fields: NaN reads as None)."""
    from plexus.postprocess.instances import InstanceSettings

    record = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in record.items()}
    boundary = bool(record.pop("boundary", False))
    settings = {**record, "watershed": bool(record.get("watershed", False))}
    for key in ("min_size", "min_distance"):
        if key in settings:
            settings[key] = int(settings[key])
    return InstanceSettings.from_dict(settings), boundary


def threshold_label(record) -> str:
    if record["method"] == "cutoff":
        return f"cutoff {float(record['cutoff']):g}"
    if record["method"] == "otsu":
        return "Otsu"
    return f"hysteresis {float(record['low']):g}/{float(record['high']):g}"


def split_label(record) -> str:
    if bool(record["boundary"]):
        return "boundary seeds"
    if bool(record["watershed"]):
        return f"watershed d={int(record['min_distance'])}"
    return "components"


def label_candidate(settings, boundary: bool, foreground: np.ndarray, outline: np.ndarray | None) -> np.ndarray:
    """The instance label map of one image under a candidate."""
    if boundary and outline is None:
        raise ValueError("a boundary candidate needs the boundary probability (the model has no boundary class)")
    return settings.apply(foreground, boundary=outline if boundary else None)


# --------------------------------------------------------------------------- probabilities


def image_maps(member_probs: Sequence[np.ndarray], heights, widths, index: int,
               has_boundary: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Foreground ``1 - p_background`` and boundary ``p_boundary`` (or None) of image ``index``.

    The members' probabilities (N, K, h, w) are upsampled to the image's own size
    (:func:`plexus.postprocess.multiclass.upsample_probs`) and averaged.
    """
    from plexus.postprocess.multiclass import upsample_probs

    shape = (int(heights[index]), int(widths[index]))
    mean = sum(upsample_probs(m[index], shape) for m in member_probs) / len(member_probs)
    return 1.0 - mean[0], (mean[2] if has_boundary else None)


def _has_boundary(member_probs: Sequence[np.ndarray], classes: dict) -> bool:
    n = len(classes)
    for probs in member_probs:
        if probs.shape[1] != n:
            raise ValueError(f"probabilities have {probs.shape[1]} classes, the config {n} ({list(classes)})")
    return n == 3


def _image_scores(foreground, outline, truth, candidates) -> np.ndarray:
    """Mean AP of one image under every candidate (settings that differ only in min_size share a labelling)."""
    from plexus.evaluation.instances import average_precision
    from plexus.postprocess.instances import InstanceSettings, remove_small_instances

    scores = np.empty(len(candidates))
    unfiltered: dict[tuple, np.ndarray] = {}
    for j, (settings, boundary) in enumerate(candidates):
        key = (InstanceSettings(**{**settings.to_dict(), "min_size": 0}), boundary)
        if key not in unfiltered:
            unfiltered[key] = label_candidate(*key, foreground, outline)
        scores[j] = average_precision(truth, remove_small_instances(unfiltered[key], settings.min_size))[0]
    return scores


def _parallel(function, items, threads: int) -> list:
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


def score_candidates(member_probs, heights, widths, truths, candidates, has_boundary: bool,
                     threads: int = 1) -> np.ndarray:
    """Mean AP of every image (rows) under every candidate (columns)."""
    def one(i):
        foreground, outline = image_maps(member_probs, heights, widths, i, has_boundary)
        return _image_scores(foreground, outline, truths[i], candidates)

    rows = _parallel(one, range(len(truths)), threads)
    return np.array(rows).reshape(len(truths), len(candidates))


def cross_fitted_choices(scores: np.ndarray, folds) -> tuple[np.ndarray, dict]:
    """Per image the candidate chosen on the other folds (first maximum), and ``{fold: candidate index}``
    (:func:`plexus.evaluation.crossfit.choose_per_fold`)."""
    from plexus.evaluation.crossfit import choose_per_fold

    folds = np.asarray(folds)
    chosen = {fold: int(index) for fold, index in choose_per_fold(scores, folds)[1].items()}
    return np.array([chosen[fold] for fold in folds.tolist()], dtype=int), chosen


# --------------------------------------------------------------------------- tuning


def _ap_column(threshold: float) -> str:
    return f"ap_{int(round(threshold * 100))}"


def tune_stage(member_oofs: dict[str, list], folds_csv, train_csv, classes: dict, options: dict, *, grid_csv,
               best_json, per_image_csv, threads: int = 1, key: str = "prob") -> dict:
    """Tune the instance post-processing on the OOF predictions by mean AP; baseline, tuned, cross-fitted."""
    from plexus.evaluation.instances import per_image_instance_metrics

    folds = read_folds(folds_csv)
    train = read_manifest(train_csv).set_index("image_id")
    ids = folds["image_id"].astype(str).tolist()
    rows = train.loc[ids]
    heights, widths = rows["height"].astype(int).to_numpy(), rows["width"].astype(int).to_numpy()
    members = member_arrays(member_oofs, ids, key)
    has_boundary = _has_boundary(members, classes)
    truths = [read_instance_map(p) for p in rows["instances"]]
    candidates = candidate_grid(options, has_boundary)
    base = baseline_index(candidates)

    scores = score_candidates(members, heights, widths, truths, candidates, has_boundary, threads)
    means = scores.mean(axis=0)
    best = int(np.argmax(means))  # first maximum
    fold_of = folds["fold"].to_numpy()
    crossfit, chosen = cross_fitted_choices(scores, fold_of)

    def tuned(i):
        foreground, outline = image_maps(members, heights, widths, i, has_boundary)
        return label_candidate(*candidates[best], foreground, outline)

    preds = _parallel(tuned, range(len(ids)), threads)
    metrics = per_image_instance_metrics(truths, preds, ids)
    per_image = pd.DataFrame({
        "image_id": ids, "subject": folds["subject"].astype(str).to_numpy(), "fold": fold_of.astype(int),
        "ap_baseline": scores[:, base], "ap": metrics["mean_ap"].to_numpy(),
        "ap_cross_fitted": scores[np.arange(len(ids)), crossfit], "f1": metrics["f1_0.5"].to_numpy(),
        "pixel_dice": metrics["pixel_dice"].to_numpy(), "n_true": metrics["n_true"].to_numpy(),
        "n_pred": metrics["n_pred"].to_numpy()})
    for column in metrics.columns:
        if column.startswith("ap_"):
            per_image[_ap_column(float(column[3:]))] = metrics[column].to_numpy()
    if not np.allclose(per_image["ap"], scores[:, best]):  # one computation, two routes
        raise RuntimeError("the tuned per-image AP differs from the tuning grid's")

    grid = pd.DataFrame([candidate_record(*c) for c in candidates])
    grid.insert(0, "setting", np.arange(len(candidates)))
    grid["threshold"] = [threshold_label(r) for r in grid.to_dict("records")]
    grid["split"] = [split_label(r) for r in grid.to_dict("records")]
    grid["mean_ap"] = means
    grid["chosen"] = grid["setting"] == best
    grid["baseline"] = grid["setting"] == base
    summary = tuning_record({
        "task": "instances", "members": list(member_oofs), "score_name": TASK.score,
        "untuned_score": float(means[base]), "score": float(means[best]),
        "cross_fitted_score": float(per_image["ap_cross_fitted"].mean()), "n_images": len(ids),
    }, {
        "settings": candidates[best][0].to_dict(), "boundary": bool(candidates[best][1]), "setting": best,
        "threshold": threshold_label(grid.iloc[best]), "split": split_label(grid.iloc[best]),
        "mean_f1": float(per_image["f1"].mean()), "mean_pixel_dice": float(per_image["pixel_dice"].mean()),
        "cross_fitted": {str(int(f)): {"setting": k, **candidate_record(*candidates[k])}
                         for f, k in sorted(chosen.items())},
        "n_candidates": len(candidates), "has_boundary_class": has_boundary,
    })
    atomic.write_csv(grid_csv, grid)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, summary)
    print(grid.sort_values("mean_ap", ascending=False).head(10).to_string(index=False))
    print(json.dumps(summary, indent=1))
    return summary


def chosen_candidate(best_json) -> tuple:
    """The tuned ``(InstanceSettings, boundary)`` of a ``best.json`` (or its content: a decision's pipeline)."""
    best = best_json if isinstance(best_json, dict) else json.loads(Path(best_json).read_text())
    return candidate_of({**best["settings"], "boundary": best["boundary"]})


# --------------------------------------------------------------------------- test predictions


def instance_maps_stage(member_means: Sequence, test_csv, best_json, classes: dict, out_dir, submission_csv,
                        threads: int = 1, key: str = "prob") -> pd.DataFrame:
    """Test instance label maps (uint16 PNG at each image's size) and the DSB2018 submission.

    The submission is decoded back (:func:`plexus.postprocess.dsb_submission.decode_submission`,
    which refuses overlapping runs) and compared with the label maps before it is written.
    """
    from plexus.postprocess.dsb_submission import decode_submission, submission_rows

    test = read_manifest(test_csv).set_index("image_id")
    runs = [read_npz(p) for p in member_means]
    for path, run in zip(member_means, runs):
        check_aligned(run["image_id"], runs[0]["image_id"], path, member_means[0])
    ids = runs[0]["image_id"].astype(str).tolist()
    heights = test.loc[ids, "height"].astype(int).to_numpy()
    widths = test.loc[ids, "width"].astype(int).to_numpy()
    members = [r[key] for r in runs]
    has_boundary = _has_boundary(members, classes)
    settings, boundary = chosen_candidate(best_json)

    def one(i):
        foreground, outline = image_maps(members, heights, widths, i, has_boundary)
        return label_candidate(settings, boundary, foreground, outline)

    labels = _parallel(one, range(len(ids)), threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id, label in zip(ids, labels):
        write_instance_map(out_dir / f"{image_id}.png", label)
    table = submission_rows(ids, labels)
    decoded = decode_submission(table, {i: label.shape for i, label in zip(ids, labels)})
    for image_id, label in zip(ids, labels):
        if not np.array_equal(decoded[image_id], label):
            raise RuntimeError(f"image {image_id}: the submission does not decode to its label map")
    atomic.write_csv(submission_csv, table)
    counts = [int(label.max()) for label in labels]
    print(f"{len(ids)} label maps in {out_dir} ({sum(counts)} nuclei, {counts.count(0)} image(s) without any); "
          f"{len(table)} rows in {submission_csv}")
    return table


# --------------------------------------------------------------------------- table


def instance_table_stage(per_image_csvs: dict, kinds: dict, out_csv, out_md, *, n_boot: int,
                         seed: int) -> pd.DataFrame:
    """Per model/ensemble: each metric of :data:`TABLE_METRICS` with its group-bootstrap 95% CI."""
    from plexus.evaluation.bootstrap import bootstrap_ci

    rows = []
    for name, path in per_image_csvs.items():
        frame = read_per_image(path)
        row = {"name": name, "kind": kinds[name]}
        for metric in TABLE_METRICS:
            ci = bootstrap_ci(frame, value=metric, group="subject", n_boot=n_boot, seed=seed)
            row.update({metric: ci["mean"], f"{metric}_low": ci["low"], f"{metric}_high": ci["high"]})
        row.update(n_images=ci["n_images"], n_groups=ci["n_groups"])
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic.write_csv(out_csv, table)
    shown = table[["name", "kind"]].copy()
    for metric, label in TABLE_METRICS.items():
        shown[label] = [f"{m:.3f} ({lo:.3f}-{hi:.3f})" for m, lo, hi in
                        zip(table[metric], table[f"{metric}_low"], table[f"{metric}_high"])]
    shown["images"], shown["groups"] = table["n_images"], table["n_groups"]
    note = (f"\nOOF mean over images; 95% CI: percentile bootstrap over CV groups ({n_boot} draws). "
            "AP: DSB2018 mean average precision over IoU 0.50:0.05:0.95; baseline: cutoff 0.5 + connected "
            "components; cross-fitted: each fold post-processed with the setting tuned on the other folds.\n")
    atomic.write_text(out_md, shown.to_markdown(index=False) + "\n" + note)
    print(shown.to_string(index=False))
    return table


# --------------------------------------------------------------------------- figures


def pick_qualitative(per_image: pd.DataFrame, n: int = 3) -> list[str]:
    """Up to ``n`` image ids spanning the tuned AP: the best, the middle ones, the worst (ties: first)."""
    ordered = per_image.sort_values("ap", ascending=False, kind="stable")["image_id"].astype(str).tolist()
    if len(ordered) <= n:
        return ordered
    positions = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[p] for p in positions]


def ap_curves(per_images: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long frame (name, iou, ap): the mean over images of the tuned AP at each IoU threshold."""
    rows = []
    for name, frame in per_images.items():
        for column in [c for c in frame.columns if c.startswith("ap_") and c[3:].isdigit()]:
            rows.append({"name": name, "iou": int(column[3:]) / 100, "ap": float(frame[column].mean())})
    return pd.DataFrame(rows, columns=["name", "iou", "ap"])


def tuning_figure_stage(grid_csv, name, paths, style=None) -> None:
    """The tuning surface of one model or ensemble: mean AP of every candidate."""
    from plexus.report import instance_figures
    from plexus.report.figures import save

    save(instance_figures.tuning_surface_figure(read_table(grid_csv), title=name, style=style), paths)


def qualitative_stage(per_image_csv, decision_json, oof_npzs, train_csv, classes: dict, name, paths, style=None,
                      n_examples: int = 3) -> None:
    """Images spanning one model's tuned AP, with the truth and the final instances (the decided candidate,
    on the plain or flip-averaged maps)."""
    from plexus.data.dsb2018 import read_image as read_rgb
    from plexus.report import instance_figures
    from plexus.report.figures import save

    train = read_manifest(train_csv).set_index("image_id")
    best = read_json(decision_json)["pipeline"]
    per_image = read_per_image(per_image_csv)  # the decision's: its AP is the one submitted
    per_image = per_image.assign(ap=per_image["postprocessed"])
    ids = pick_qualitative(per_image, n_examples)
    rows = train.loc[ids]
    heights, widths = rows["height"].astype(int).to_numpy(), rows["width"].astype(int).to_numpy()
    probs = member_arrays(as_members(name, oof_npzs), ids, "prob_tta" if best.get("tta") else "prob")
    has_boundary = _has_boundary(probs, classes)
    candidate = candidate_of({**best["settings"], "boundary": best["boundary"]})
    preds = [label_candidate(*candidate, *image_maps(probs, heights, widths, i, has_boundary))
             for i in range(len(ids))]
    images = [read_rgb(p) for p in rows["image"]]
    truths = [read_instance_map(p) for p in rows["instances"]]
    aps = per_image.set_index("image_id").loc[ids, "ap"].tolist()
    fig = instance_figures.qualitative_figure(images, truths, preds, ids, aps,
                                              title=f"{name}: {best['threshold']}, {best['split']}, "
                                                    f"min size {best['settings']['min_size']}", style=style)
    save(fig, paths)


# --------------------------------------------------------------------------- robustness


def _fold_ap(member_probs, train: pd.DataFrame, ids, folds, best_json, classes: dict, threads: int) -> list[dict]:
    """Mean AP per fold of OOF probabilities at the tuned candidate of ``best_json``."""
    rows = train.loc[list(ids)]
    heights, widths = rows["height"].astype(int).to_numpy(), rows["width"].astype(int).to_numpy()
    truths = [read_instance_map(p) for p in rows["instances"]]
    candidate = chosen_candidate(best_json)
    scores = score_candidates(member_probs, heights, widths, truths, [candidate],
                              _has_boundary(member_probs, classes), threads)[:, 0]
    folds = np.asarray(folds)
    return [{"fold": int(f), "class": "nuclei", "ap": float(scores[folds == f].mean())} for f in np.unique(folds)]


def noise_scores_stage(predictions: dict[tuple[str, float], str], train_csv, best_json, classes: dict, out_csv,
                       threads: int = 1) -> pd.DataFrame:
    """``scores.csv``: mean AP per (condition, sigma, fold) of the noisy OOF predictions, at the tuned candidate."""
    train = read_manifest(train_csv).set_index("image_id")
    rows = []
    for (condition, sigma), path in sorted(predictions.items()):
        run = read_npz(path)
        for row in _fold_ap([run["prob"]], train, run["image_id"].astype(str), run["fold"], best_json, classes,
                            threads):
            rows.append({"condition": condition, "sigma": float(sigma), **row})
    table = pd.DataFrame(rows, columns=["condition", "sigma", "fold", "class", "ap"])
    atomic.write_csv(out_csv, table)
    print(table.groupby(["condition", "sigma"])["ap"].mean().to_string())
    return table


def train_size_scores_stage(entries: list, oof_files: dict[str, list], infos: dict[str, list], folds_csv,
                            train_csv, best_json, classes: dict, out_csv, threads: int = 1) -> pd.DataFrame:
    """``scores.csv``: mean AP per (run, fold) of each training-size run's OOF predictions and the full run's."""
    folds, train = read_folds(folds_csv), read_manifest(train_csv).set_index("image_id")
    ids = folds["image_id"].astype(str).tolist()
    rows = []
    for key, seed in [(k, s) for k, _, s in entries] + [("full", 0)]:
        n_train = [json.loads(Path(p).read_text())["n_train"] for p in infos[key]]
        probs = member_arrays({key: oof_files[key]}, ids)
        for row in _fold_ap(probs, train, ids, folds["fold"].to_numpy(), best_json, classes, threads):
            rows.append({"run": key, "n_train": n_train[row["fold"]], "seed": seed, **row})
    table = pd.DataFrame(rows, columns=["run", "n_train", "seed", "fold", "class", "ap"])
    atomic.write_csv(out_csv, table)
    print(table.groupby("run")[["n_train", "ap"]].mean().to_string())
    return table


def image_level(per_image_csv) -> pd.DataFrame:
    """The per-image scores the comparison reads: AP baseline / tuned / cross-fitted, and AP per IoU."""
    frame = read_per_image(per_image_csv)
    out = frame.rename(columns={"ap_baseline": "untuned", "ap": "tuned", "ap_cross_fitted": "cross_fitted"})
    return out.assign(postprocessed=out["tuned"])


# --------------------------------------------------------------------------- the task


class InstancesTask(Task):
    def settings(self, stage: str, config: dict) -> dict:
        from plexus.config import learnt_classes

        classes, summary = learnt_classes(config), config["summary"]
        keys = ("cutoffs", "otsu", "hysteresis", "watershed", "min_distances", "min_sizes")
        return {
            "tune": lambda: {"classes": classes, "options": {key: config["instances"][key] for key in keys}},
            "postprocess": lambda: {"classes": classes, "options": {key: config["instances"][key] for key in keys},
                                    "candidates": [c for c in config["postprocess"]["candidates"] if c == "tta"],
                                    "n_boot": config["postprocess"]["bootstrap_samples"],
                                    "seed": config["postprocess"]["seed"],
                                    "min_gain": config["postprocess"]["min_gain"]},
            "submission": lambda: {"classes": classes},
            "summary_table": lambda: {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"]},
            "comparison": lambda: {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"]},
            "figure_qualitative": lambda: {"classes": classes},
            "noise_scores": lambda: {"classes": classes},
            "train_size_scores": lambda: {"classes": classes},
        }.get(stage, dict)()

    def tune_into(self, job, key: str, outputs: dict) -> None:
        i, s = job.input, job.params.settings
        tune_stage(member_oofs(job), i.folds, i.train, s["classes"], s["options"], grid_csv=outputs["grid"],
                   best_json=outputs["best"], per_image_csv=outputs["per_image"], threads=job.threads, key=key)

    def image_level(self, per_image_csv):
        return image_level(per_image_csv)

    def submission(self, job) -> None:
        i, o, decision = job.input, job.output, read_json(job.input.decision)
        pipeline = decision["pipeline"]
        instance_maps_stage(list(i.means), i.test, pipeline, job.params.settings["classes"], o.labelmaps, o.csv,
                            threads=job.threads, key="prob_tta" if pipeline.get("tta") else "prob")
        write_submission_summary(o.csv, o.summary, decision)

    def summary_table(self, job) -> None:
        i, o, p = job.input, job.output, job.params
        instance_table_stage(dict(zip(p.names, i.per_image)), dict(zip(p.names, p.kinds)), o.csv, o.md,
                             n_boot=p.settings["n_boot"], seed=p.settings["seed"])

    def comparison(self, job) -> None:
        from plexus.report import instance_figures
        from plexus.report.figures import save
        from plexus.stages.comparison import score_comparison_stage

        score_comparison_stage(job, self.score, draw_models=False)
        curves = ap_curves({name: read_per_image(path) for name, path in zip(job.params.names, job.input.per_image)})
        save(instance_figures.ap_vs_iou_figure(curves, style=job.params.style), [job.output.png, job.output.pdf])

    def noise_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        noise_scores_stage(noise_files(job), i.train, i.best, s["classes"], job.output[0], threads=job.threads)

    def train_size_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        keys = [key for key, _, _ in job.params.entries] + ["full"]
        train_size_scores_stage(job.params.entries, {k: list(i[k]) for k in keys},
                                {k: list(i[f"info_{k}"]) for k in keys}, i.folds, i.train, i.best, s["classes"],
                                job.output[0], threads=job.threads)

    def figure_study(self, study: str, job) -> None:
        from plexus.report.class_figures import study_figure
        from plexus.report.figures import save

        save(study_figure(study, read_table(job.input.scores), job.params.style, value="ap", label="mean AP"),
             [job.output.png, job.output.pdf])

    def figure_tuning(self, job) -> None:
        tuning_figure_stage(job.input.grid, job.wildcards.name, figure_paths(job, "surface"), job.params.style)

    def figure_qualitative(self, job) -> None:
        i = job.input
        qualitative_stage(i.decision_per_image, i.decision, member_oofs(job), i.train, job.params.settings["classes"],
                          job.wildcards.model, figure_paths(job, "panel"), job.params.style)


TASK = InstancesTask(
    name="instances",
    score="mean AP",
    formats=("dsb2018",),
    figures={
        "figure_tuning": (Figure("surface", "tuning/{name}_surface", "instance_tuning.rst", "Tuning"),),
        "figure_qualitative": (Figure("panel", "qualitative/{model}", "instance_qualitative.rst", "Predictions"),),
    },
    tta=True,
    studies=("noise", "train_size"),
)
