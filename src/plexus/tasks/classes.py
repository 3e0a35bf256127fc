"""Task ``classes``: several classes from a softmax, any 2-D dataset from a sample sheet.

Its data formats are ``folders`` and ``sheet`` (the manifest of :mod:`plexus.stages.data`);
training and prediction are the shared stages. Here: per-class post-processing tuned on the
OOF predictions at each image's original size, label maps and a per-class run-length table,
per-class tables, robustness scores and figures.

Post-processing: a pixel takes its most probable class (softmax argmax of the members'
averaged probabilities, upsampled to the image's own size); then each class's connected
components smaller than that class's minimum area (pixels of the original image) become
background. The minimum area of each class is tuned on the OOF predictions to maximise the
mean per-image Dice of that class (classes are independent: removing pixels of one class
only changes that class's Dice), ties to the smallest area. The honest estimate is
cross-fitted: each fold's images are scored with the areas tuned on the other folds. The map
candidates (flip TTA, a K-label dense CRF of the softmax and the image before the argmax, each
class's Otsu threshold or hysteresis seed level on its own probability map, its largest component,
its filled holes) are then tried under the keep rule (:meth:`ClassesTask.map_candidates`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.data import dataset
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
    THRESHOLD_STEPS,
    Figure,
    Task,
    as_members,
    choose_map_steps,
    figure_paths,
    map_step_candidates,
    member_oofs,
    step_variants,
    tuning_record,
    write_submission_summary,
)

METRICS = ("dice", "iou", "sensitivity", "precision")
#: the post-processing candidates a class map tries: flip TTA, then the map steps of
#: :data:`plexus.tasks.base.UNIT_STEPS`: crf, the marginals of a K-label dense CRF of the softmax and
#: the image in place of the softmax (:func:`plexus.postprocess.multiclass.class_crf`), then one class
#: against the rest (the tuned minimum areas are remove_small's part): otsu and hysteresis on each
#: class's probability map (:func:`plexus.postprocess.multiclass.class_thresholds`), largest_component
#: and fill_holes on its pixels of the label map (:func:`plexus.postprocess.multiclass.class_steps`)
CLASS_CANDIDATES = ("tta", "crf", "otsu", "hysteresis", "largest_component", "fill_holes")


def _appearance(values) -> list:
    return list(pd.unique(pd.Series(list(values))))


# --------------------------------------------------------------------------- scoring


def _truths(train: pd.DataFrame, image_ids, classes: dict, ignore: dict | None = None):
    rows = train.set_index("image_id").loc[list(image_ids)]
    for path in rows["mask"]:
        yield dataset.read_class_mask(path, classes, ignore=ignore)


def member_means(member_probs: list[np.ndarray], manifest: pd.DataFrame, image_ids):
    """Per image of ``image_ids``, the members' probabilities (rows in ``image_ids`` order) averaged
    at the image's own size, which ``manifest`` holds: float32 ``(K, H, W)``."""
    from plexus.postprocess.multiclass import upsample_probs

    sizes = manifest.set_index("image_id").loc[list(image_ids), ["height", "width"]].astype(int)
    for i, (h, w) in enumerate(zip(sizes["height"], sizes["width"])):
        yield sum(upsample_probs(m[i], (h, w)) for m in member_probs) / len(member_probs)


def member_labels(member_probs: list[np.ndarray], manifest: pd.DataFrame, image_ids):
    """Per image of ``image_ids``, the class map (argmax) of the members' probabilities averaged at
    the image's own size (:func:`member_means`)."""
    from plexus.postprocess.multiclass import argmax_labels

    for mean in member_means(member_probs, manifest, image_ids):
        yield argmax_labels(mean)


def decided_labels(member_probs: list[np.ndarray], manifest: pd.DataFrame, image_ids, pipeline: dict,
                   classes: dict, crf_settings: dict | None = None):
    """Per image of ``image_ids``, the class map of a decision's ``pipeline`` (:func:`decided_label`)
    made from the members' averaged probabilities (:func:`member_means`); a ``crf`` pipeline reads each
    image's file named in ``manifest`` (its first channel column, gray: as the binary task's crf) and
    runs the CRF at ``crf_settings`` (the decision's)."""
    from plexus.postprocess.multiclass import argmax_labels

    images = _crf_images(manifest, image_ids) if pipeline.get("crf") else None
    for k, mean in enumerate(member_means(member_probs, manifest, image_ids)):
        image = None if images is None else images(k)
        yield decided_label(argmax_labels(mean), pipeline, classes, mean, image, crf_settings)


def _crf_images(manifest: pd.DataFrame, image_ids):
    """``k -> the gray image of image_ids[k]`` (read when asked), from ``manifest``'s image column: the
    image the crf candidate reads, as the binary task's (:func:`plexus.data.truth.image_paths`)."""
    from plexus.data.truth import image_paths, read_gray

    paths = image_paths(manifest, list(image_ids))
    return lambda k: read_gray(paths[k])


def tune_stage(member_oofs: dict[str, list], folds_csv, train_csv, classes: dict, grid, *, grid_csv, best_json,
               per_image_csv, ignore: dict | None = None, key: str = "prob") -> None:
    """Tune each class's minimum area on the OOF predictions; per-image scores untuned, tuned, cross-fitted."""
    from plexus.evaluation.multiclass import class_scores
    from plexus.postprocess.multiclass import (
        cross_fitted_min_areas,
        image_records,
        mean_dice_grid,
        remove_small,
        tune_from_records,
    )

    names = list(classes)
    n_classes = len(names)
    grid = sorted({int(a) for a in grid} | {0})  # area 0 (no removal) is the untuned column
    folds = read_folds(folds_csv)
    train = read_manifest(train_csv)
    ids = folds["image_id"].astype(str).tolist()
    labels = list(member_labels(member_arrays(member_oofs, ids, key), train, ids))
    truths = list(_truths(train, ids, classes, ignore))
    records = [image_records(pred, true, n_classes) for pred, true in zip(labels, truths)]
    means = mean_dice_grid(records, grid)  # (K-1, grid)
    best = tune_from_records(records, grid)  # K areas, the background's 0
    fold_of = folds["fold"].to_numpy()
    crossfit = cross_fitted_min_areas(records, fold_of.tolist(), grid).dice

    rows = []
    for i, (pred, true) in enumerate(zip(labels, truths)):
        tuned = class_scores(remove_small(pred, best), true, n_classes)
        untuned = class_scores(pred, true, n_classes)
        for c in range(n_classes - 1):
            rows.append({"image_id": ids[i], "subject": folds["subject"].iloc[i], "fold": int(fold_of[i]),
                         "class": names[c + 1], "dice_untuned": float(untuned["dice"][c]),
                         **{m: float(tuned[m][c]) for m in METRICS},
                         "dice_cross_fitted": float(crossfit[i, c]),
                         "true_area": int(tuned["true_area"][c]), "pred_area": int(tuned["pred_area"][c])})
    per_image = pd.DataFrame(rows)
    grid_frame = pd.DataFrame([{"class": names[c + 1], "min_area": a, "dice": float(means[c, g])}
                               for c in range(n_classes - 1) for g, a in enumerate(grid)])
    summary = tuning_record({
        "task": "classes", "members": list(member_oofs), "score_name": TASK.score,
        "untuned_score": float(per_image["dice_untuned"].mean()), "score": float(per_image["dice"].mean()),
        "cross_fitted_score": float(per_image["dice_cross_fitted"].mean()), "n_images": len(ids),
    }, {"classes": {names[c + 1]: {"min_area": int(best[c + 1]), "dice": float(means[c, grid.index(best[c + 1])]),
                                   "dice_at_0": float(means[c, 0])} for c in range(n_classes - 1)}})
    atomic.write_csv(grid_csv, grid_frame)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, summary)
    print(json.dumps(summary, indent=1))


def decided_label(label: np.ndarray, pipeline: dict, classes: dict, prob: np.ndarray | None = None,
                  image: np.ndarray | None = None, crf_settings: dict | None = None) -> np.ndarray:
    """A class map (the argmax of ``prob``, the averaged probabilities ``(K, H, W)`` at its size) at
    a decision's ``pipeline``: with ``crf``, ``prob`` replaced by the marginals of a K-label dense CRF
    of ``prob`` and the gray ``image`` ``(H, W)`` at ``crf_settings``
    (:func:`plexus.postprocess.multiclass.class_crf`) and ``label`` by their argmax; each class's kept
    Otsu threshold or hysteresis seed level on its own probability map (``otsu``, ``hysteresis_high``:
    :func:`plexus.postprocess.multiclass.class_thresholds`; only they and the crf read ``prob``), the
    tuned minimum areas, then its kept largest component and filled holes (``largest_only``,
    ``fill_holes``: :func:`plexus.postprocess.multiclass.class_steps`)."""
    from plexus.postprocess.multiclass import argmax_labels, class_crf, class_steps, class_thresholds, remove_small

    if pipeline.get("crf"):
        if prob is None or image is None:
            raise ValueError("a decision with crf needs the class probabilities and the image of each map")
        prob = class_crf(prob, image, crf_settings)
        label = argmax_labels(prob)
    otsu, high = bool(pipeline.get("otsu")), pipeline.get("hysteresis_high")
    if otsu or high is not None:
        if prob is None:
            raise ValueError("a decision with otsu or hysteresis_high needs the class probabilities of each map")
        label = class_thresholds(label, prob, otsu=otsu, hysteresis_high=None if high is None else float(high))
    label = remove_small(label, min_areas_of(pipeline, classes))
    return class_steps(label, len(classes), largest_only=bool(pipeline.get("largest_only")),
                       fill_holes=bool(pipeline.get("fill_holes")))


def min_areas_of(best, classes: dict) -> list[int]:
    """The tuned minimum area of every class (index 0, the background, 0), of a ``best.json`` (or
    its content: a decision's pipeline)."""
    best = (best if isinstance(best, dict) else json.loads(Path(best).read_text()))["classes"]
    return [0] + [int(best[name]["min_area"]) for name in list(classes)[1:]]


def labelmaps_stage(member_means: list, test_csv, best_json, classes: dict, out_dir, submission_csv,
                    suffix: str = ".png", key: str = "prob", crf_settings: dict | None = None) -> None:
    """Test label maps at each image's size (mask values of ``classes``) and the per-class run-length
    table; a ``crf`` decision reads the test images of ``test_csv`` (at ``crf_settings``)."""
    from plexus.evaluation.multiclass import class_table
    from plexus.postprocess.multiclass import rle_rows, write_label_map

    test = read_manifest(test_csv)
    runs = [read_npz(p) for p in member_means]
    for path, run in zip(member_means, runs):
        check_aligned(run["image_id"], runs[0]["image_id"], path, member_means[0])
    ids = runs[0]["image_id"].astype(str)
    pipeline = best_json if isinstance(best_json, dict) else json.loads(Path(best_json).read_text())
    values = class_table(classes)[1]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, label in zip(ids, decided_labels([r[key] for r in runs], test, ids, pipeline, classes,
                                                   crf_settings)):
        write_label_map(out_dir / f"{image_id}{suffix}", label, values)
        rows += rle_rows(image_id, label, list(classes))
    atomic.write_csv(submission_csv, pd.DataFrame(rows, columns=["image_id", "class", "EncodedPixels"]))
    print(f"{len(ids)} label maps in {out_dir}; {len(rows)} rows in {submission_csv}")


def class_table_stage(per_image_csvs: dict, train_csv, classes: dict, out_csv, out_md, *, n_boot: int,
                      seed: int, rater2: pd.DataFrame | None = None) -> None:
    """Per (model or ensemble, class, metric): mean and subject-bootstrap 95% CI; the all-background
    baseline; with ``rater2``, the second rater's row and every row again on its images
    (:func:`plexus.report.tables.unit_table`)."""
    from plexus.report.tables import unit_markdown, unit_table

    frames = {name: read_per_image(path) for name, path in per_image_csvs.items()}
    table = unit_table(frames, list(classes)[1:], "class", n_boot=n_boot, seed=seed, rater2=rater2)
    atomic.write_csv(out_csv, table)
    atomic.write_text(out_md, unit_markdown(table, "class"))
    print(unit_markdown(table, "class"))


# --------------------------------------------------------------------------- robustness


def _fold_class_dice(labels, truths, fold_of, areas, n_classes: int, names) -> list[dict]:
    """Mean Dice per (fold, foreground class) after the tuned minimum areas."""
    from plexus.evaluation.multiclass import class_scores
    from plexus.postprocess.multiclass import remove_small

    dice = np.array([class_scores(remove_small(p, areas), t, n_classes)["dice"] for p, t in zip(labels, truths)])
    return [{"fold": int(f), "class": names[c + 1], "dice": float(dice[fold_of == f, c].mean())}
            for f in np.unique(fold_of) for c in range(n_classes - 1)]


def noise_scores_stage(noise_npzs: dict[str, tuple], folds_csv, train_csv, best_json, classes: dict,
                       out_csv, ignore: dict | None = None) -> None:
    """Per (condition, sigma, fold, class) Dice of the noisy OOF predictions.

    ``noise_npzs``: input key -> (path, condition, sigma).
    """
    folds, train = read_folds(folds_csv), read_manifest(train_csv)
    truth_of = dict(zip(folds["image_id"].astype(str), _truths(train, folds["image_id"].astype(str), classes, ignore)))
    areas, names = min_areas_of(best_json, classes), list(classes)
    rows = []
    for path, condition, sigma in noise_npzs.values():
        run = read_npz(path)
        ids = run["image_id"].astype(str)
        labels = member_labels([run["prob"]], train, ids)
        for row in _fold_class_dice(labels, [truth_of[i] for i in ids], run["fold"], areas, len(names), names):
            rows.append({"condition": condition, "sigma": float(sigma), **row})
    atomic.write_csv(out_csv, pd.DataFrame(rows))


def train_size_scores_stage(entries: list, oof_files: dict[str, list], infos: dict[str, list], folds_csv,
                            train_csv, best_json, classes: dict, out_csv, ignore: dict | None = None) -> None:
    """Per (training-set size, seed, fold, class) Dice of the subset runs' OOF predictions and the full run's."""
    folds, train = read_folds(folds_csv), read_manifest(train_csv)
    ids = folds["image_id"].astype(str).tolist()
    truths = list(_truths(train, ids, classes, ignore))
    areas, names = min_areas_of(best_json, classes), list(classes)
    rows = []
    for key, seed in [(k, s) for k, _, s in entries] + [("full", 0)]:
        n_train = [json.loads(Path(p).read_text())["n_train"] for p in infos[key]]
        probs = member_arrays({key: oof_files[key]}, ids)
        labels = member_labels(probs, train, ids)
        for row in _fold_class_dice(labels, truths, folds["fold"].to_numpy(), areas, len(names), names):
            rows.append({"run": key, "n_train": n_train[row["fold"]], "seed": seed, **row})
    atomic.write_csv(out_csv, pd.DataFrame(rows))


def missing_channel_stage(model_pts: list, train_npz, folds_csv, train_csv, summary_json, best_json, classes: dict,
                          out_csv, *, batch_size: int = 64, threads: int | None = None,
                          ignore: dict | None = None) -> None:
    """Per (removed channel, fold, class) Dice of the OOF predictions with that channel removed ("none": all kept)."""
    from plexus.data import splits
    from plexus.inference.predict import predict_probs

    data = read_npz(train_npz)
    folds, train = read_folds(folds_csv), read_manifest(train_csv)
    check_aligned(data["image_id"], folds["image_id"], train_npz, folds_csv)
    channels = json.loads(Path(summary_json).read_text())["input_channels"]
    areas, names = min_areas_of(best_json, classes), list(classes)
    ids = folds["image_id"].astype(str).to_numpy()
    truths = list(_truths(train, ids, classes, ignore))
    rows = []
    for removed in [None, *range(len(channels))]:
        probs = np.empty((len(ids), len(names), *data["images"].shape[-2:]), np.float16)
        for fold, model_pt in enumerate(model_pts):
            _, val = splits.fold_indices(folds, fold)
            probs[val] = predict_probs(model_pt, data["images"][val], present=data["present"][val],
                                       drop_channel=removed, batch_size=batch_size, threads=threads)["prob"]
        labels = member_labels([probs], train, ids)
        for row in _fold_class_dice(labels, truths, folds["fold"].to_numpy(), areas, len(names), names):
            rows.append({"removed": "none" if removed is None else channels[removed], **row})
    atomic.write_csv(out_csv, pd.DataFrame(rows))


# --------------------------------------------------------------------------- figures


def class_figures_stage(inputs: dict, outputs: dict, style: dict | None = None) -> None:
    """Per-class score bars (``table``) and one figure per robustness study in ``inputs``.

    ``outputs`` maps ``{kind}_{png,pdf}`` to paths; ``kind`` is ``scores`` or a study.
    """
    from plexus.report import class_figures
    from plexus.report.figures import save

    table = read_table(inputs["table"])
    figures = {"scores": lambda: class_figures.class_scores_figure(table[table["metric"].isin(METRICS)], style)}
    makers = {"noise": class_figures.class_noise_figure, "train_size": class_figures.class_train_size_figure,
              "missing_channel": class_figures.missing_channel_figure}
    for study, make in makers.items():
        if study in inputs:
            scores = read_table(inputs[study])
            figures[study] = lambda make=make, scores=scores: make(scores, style)
    for kind, draw in figures.items():
        save(draw(), [outputs[f"{kind}_png"], outputs[f"{kind}_pdf"]])


def qualitative_stage(per_image_csv, decision_json, train_npz, oof_npzs, train_csv, classes: dict, name, paths,
                      style=None, ignore: dict | None = None) -> None:
    """Best, median and worst OOF images of one model by the mean Dice over the classes of its final
    decision (``results/postprocess/{name}_per_image.csv``), each shown with the label map that
    decision makes (argmax of the plain or flip-averaged maps, then the kept threshold step, the tuned
    minimum areas and the kept map steps: :func:`decided_label`) at the image's own size."""
    from plexus.report import class_figures
    from plexus.report.figures import save

    per_image = read_per_image(per_image_csv)
    scores = per_image.set_index("image_id")["postprocessed"].sort_values(ascending=False, kind="stable")
    ordered = scores.index.astype(str).tolist()
    picks = dict(zip(("best", "median", "worst"), [ordered[0], ordered[len(ordered) // 2], ordered[-1]]))
    ids = list(picks.values())
    data = read_npz(train_npz)
    row_of = {image_id: row for row, image_id in enumerate(data["image_id"].astype(str))}
    train = read_manifest(train_csv)
    decided = read_json(decision_json)
    pipeline = decided["pipeline"]
    probs = member_arrays(as_members(name, oof_npzs), ids, "prob_tta" if pipeline.get("tta") else "prob")
    preds = list(decided_labels(probs, train, ids, pipeline, classes, decided.get("crf_settings")))
    truths = list(_truths(train, ids, classes, ignore))
    images = [np.moveaxis(data["images"][row_of[i]], 0, -1) for i in ids]
    fig = class_figures.label_panel(images, truths, preds, ids, [float(scores[i]) for i in ids], list(picks),
                                    list(classes), style,
                                    title=f"{name}: best, median and worst OOF images at its final decision")
    save(fig, paths)


def tuning_figure_stage(grid_csv, best_json, name, paths, style=None) -> None:
    from plexus.report import class_figures
    from plexus.report.figures import save

    best = json.loads(Path(best_json).read_text())
    save(class_figures.min_area_figure(read_table(grid_csv), best, f"{name}: minimum area per class"), paths)


# --------------------------------------------------------------------------- the task


class ClassesTask(Task):
    def units(self, settings: dict) -> tuple[list[str], np.ndarray]:
        names = list(settings["classes"])
        return names[1:], np.eye(len(names), dtype=bool)[1:]

    def decided_unit_masks(self, settings: dict, members: dict[str, list[str]], manifest, image_ids, decision: dict):
        pipeline = decision["pipeline"]
        probs = member_arrays(members, list(image_ids), "prob_tta" if pipeline.get("tta") else "prob")
        matrix = self.units(settings)[1]
        for label in decided_labels(probs, manifest, image_ids, pipeline, settings["classes"],
                                    decision.get("crf_settings")):
            yield matrix[:, label]

    def unit_values(self, settings: dict) -> list[int]:
        return list(settings["classes"].values())[1:]

    def settings(self, stage: str, config: dict) -> dict:
        from plexus.config import grid_values, ignored_classes, learnt_classes

        classes, ignore, summary = learnt_classes(config), ignored_classes(config), config["summary"]
        return {
            "tune": lambda: {"classes": classes, "ignore": ignore,
                             "grid": grid_values(config["tuning"]["min_sizes"], integer=True)},
            "postprocess": lambda: {"classes": classes, "ignore": ignore,
                                    "grid": grid_values(config["tuning"]["min_sizes"], integer=True),
                                    "candidates": [c for c in config["postprocess"]["candidates"]
                                                   if c in CLASS_CANDIDATES],
                                    "hysteresis_highs": [float(h) for h in config["postprocess"]["hysteresis_highs"]],
                                    "crf": config["postprocess"]["crf"],
                                    "n_boot": config["postprocess"]["bootstrap_samples"],
                                    "seed": config["postprocess"]["seed"],
                                    "min_gain": config["postprocess"]["min_gain"]},
            "submission": lambda: {"classes": classes},
            "volumes": lambda: {"classes": classes, "ignore": ignore},
            "summary_table": lambda: {"classes": classes, "ignore": ignore, "n_boot": summary["bootstrap_samples"],
                                      "seed": summary["seed"]},
            "comparison": lambda: {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"]},
            "noise_scores": lambda: {"classes": classes, "ignore": ignore},
            "train_size_scores": lambda: {"classes": classes, "ignore": ignore},
            "missing_channel_scores": lambda: {"classes": classes, "ignore": ignore,
                                               "batch_size": config["predict"]["batch_size"]},
            "figure_qualitative": lambda: {"classes": classes, "ignore": ignore},
        }.get(stage, dict)()

    def map_candidates(self, job, per_image, pipeline: dict, decisions: list, fold_tta: dict[int, bool]):
        """The softmax replaced by the marginals of a K-label dense CRF with the image (``crf``, first:
        :func:`plexus.postprocess.multiclass.class_crf` at ``postprocess.crf``, on each image's file of
        the training manifest, as the binary task's), then each class against the rest
        (``postprocess.candidates``): its Otsu threshold (``otsu``) or a hysteresis seed level
        (``hysteresis``, each of ``postprocess.hysteresis_highs`` above 1/K, the best kept) on its own
        probability map, then its largest component and filled holes (``largest_component``,
        ``fill_holes``), with the tuned minimum areas (:func:`decided_label`,
        :func:`plexus.tasks.base.choose_map_steps`); a fold's setting is the minimum areas tuned on the
        other folds, as the tuning's cross-fitted score has them."""
        from plexus.evaluation.multiclass import class_scores
        from plexus.postprocess.multiclass import argmax_labels, class_crf, cross_fitted_min_areas, image_records

        s = job.params.settings
        candidates = map_step_candidates(s["candidates"])
        if not candidates:
            return per_image, pipeline
        classes, n_classes = s["classes"], len(s["classes"])
        # a pixel of class c >= 1 has p_c > 1/K (the argmax; ties go to the lower class): a level at or
        # below 1/K seeds every component, so it is not tried
        levels = [float(h) for h in s.get("hysteresis_highs", ()) if h > 1 / n_classes]
        folds, train = read_folds(job.input.folds), read_manifest(job.input.train)
        ids = folds["image_id"].astype(str).tolist()
        if per_image["image_id"].astype(str).tolist() != ids:
            raise ValueError(f"{job.input.per_image}: its images are not the folds' in their order")
        truths = list(_truths(train, ids, classes, s["ignore"]))
        # only they read the probabilities (the crf the plain ones, the thresholds the map they cut)
        keep_probs = any(c in THRESHOLD_STEPS or c == "crf" for c in candidates)
        maps: dict[tuple[bool, bool], tuple[list, list]] = {}
        fold_areas: dict[bool, dict] = {}

        def maps_of(tta: bool, crf: bool = False) -> tuple[list, list]:
            """Each image's label map and (when a step reads them) its averaged probabilities, or with
            ``crf`` their CRF marginals and the argmax of those (computed once, on every image)."""
            if (tta, crf) not in maps:
                if crf:
                    images = _crf_images(train, ids)
                    marginals = [class_crf(p, images(k), s.get("crf")) for k, p in enumerate(maps_of(tta)[1])]
                    maps[tta, crf] = [argmax_labels(m) for m in marginals], marginals
                else:
                    means = member_means(member_arrays(member_oofs(job), ids, "prob_tta" if tta else "prob"), train,
                                         ids)
                    if keep_probs:
                        probs = list(means)
                        maps[tta, crf] = [argmax_labels(p) for p in probs], probs
                    else:
                        maps[tta, crf] = [argmax_labels(p) for p in means], [None] * len(ids)
            return maps[tta, crf]

        def scores(tta: bool, areas: list[int], steps: dict, rows) -> np.ndarray:
            # the crf is applied here once per image (maps_of): decided_label gets its marginals
            setting = {"classes": {name: {"min_area": int(a)} for name, a in zip(list(classes)[1:], areas[1:])},
                       **{k: v for k, v in steps.items() if k != "crf"}}
            labels, probs = maps_of(tta, bool(steps.get("crf")))
            out = np.full(len(ids), np.nan)
            for i in rows:
                out[i] = np.mean(class_scores(decided_label(labels[i], setting, classes, probs[i]), truths[i],
                                              n_classes)["dice"])
            return out

        def fold_setting(tta: bool, fold: int) -> list[int]:
            if tta not in fold_areas:
                records = [image_records(pred, true, n_classes) for pred, true in zip(maps_of(tta)[0], truths)]
                grid = sorted({int(a) for a in s["grid"]} | {0})
                fold_areas[tta] = cross_fitted_min_areas(records, folds["fold"].tolist(), grid).min_areas
            return fold_areas[tta][fold]

        return choose_map_steps(per_image, pipeline, decisions, fold_tta, candidates=candidates,
                                variants=lambda candidate, areas, steps: step_variants(candidate, steps, levels),
                                scores=scores, final_setting=min_areas_of(pipeline, classes),
                                fold_setting=fold_setting, subjects=folds["subject"].to_numpy(),
                                fold_of=folds["fold"].to_numpy(),
                                boot={"n_boot": s["n_boot"], "seed": s["seed"],
                                      "min_gain": float(s.get("min_gain", 0.0))})

    def tune_into(self, job, key: str, outputs: dict) -> None:
        i, s = job.input, job.params.settings
        tune_stage(member_oofs(job), i.folds, i.train, s["classes"], s["grid"], grid_csv=outputs["grid"],
                   best_json=outputs["best"], per_image_csv=outputs["per_image"], ignore=s["ignore"], key=key)

    def submission(self, job) -> None:
        i, o, decision = job.input, job.output, read_json(job.input.decision)
        pipeline = decision["pipeline"]
        labelmaps_stage(list(i.means), i.test, pipeline, job.params.settings["classes"], o.labelmaps, o.csv,
                        key="prob_tta" if pipeline.get("tta") else "prob", crf_settings=decision.get("crf_settings"))
        write_submission_summary(o.csv, o.summary, decision)

    def summary_table(self, job) -> None:
        """The per-class table, with the second rater (``mask_rater2``) beside every model on its images."""
        from plexus.evaluation.raters import foreground_matrix, rater2_frame

        i, o, p, s = job.input, job.output, job.params, job.params.settings
        classes = s["classes"]
        rater2 = rater2_frame(read_manifest(i.train), classes, foreground_matrix(len(classes)), list(classes)[1:],
                              "class", ignore=s.get("ignore"))
        class_table_stage(dict(zip(p.names, i.per_image)), i.train, classes, o.csv, o.md, n_boot=s["n_boot"],
                          seed=s["seed"], rater2=rater2)

    def comparison(self, job) -> None:
        """The comparison and pairwise tables of the mean Dice; the models figure: each class's
        Dice, IoU, sensitivity and precision per model and ensemble, with CIs."""
        from plexus.report import class_figures
        from plexus.report.figures import save
        from plexus.report.tables import unit_table
        from plexus.stages.comparison import score_comparison_stage

        score_comparison_stage(job, self.score, draw_models=False)
        p, s = job.params, job.params.settings
        frames = {name: read_per_image(path) for name, path in zip(p.names, job.input.tuned_per_image)}
        classes = _appearance(next(iter(frames.values()))["class"])
        table = unit_table(frames, classes, "class", n_boot=s["n_boot"], seed=s["seed"])
        save(class_figures.class_scores_figure(table[table["metric"].isin(METRICS)], p.style),
             [job.output.png, job.output.pdf])

    def noise_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        files = {key: (i[key], condition, sigma) for key, condition, sigma in job.params.entries}
        noise_scores_stage(files, i.folds, i.train, i.best, s["classes"], job.output[0], ignore=s["ignore"])

    def train_size_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        keys = [key for key, _, _ in job.params.entries] + ["full"]
        train_size_scores_stage(job.params.entries, {k: list(i[k]) for k in keys},
                                {k: list(i[f"info_{k}"]) for k in keys}, i.folds, i.train, i.best, s["classes"],
                                job.output[0], ignore=s["ignore"])

    def missing_channel_scores(self, job) -> None:
        i, s = job.input, job.params.settings
        missing_channel_stage(list(i.models), i.data, i.folds, i.train, i.summary, i.best, s["classes"],
                              job.output[0], batch_size=s["batch_size"], threads=job.threads, ignore=s["ignore"])

    def figure_tuning(self, job) -> None:
        tuning_figure_stage(job.input.grid, job.input.best, job.wildcards.name, figure_paths(job, "min_area"),
                            job.params.style)

    def figure_qualitative(self, job) -> None:
        i, s = job.input, job.params.settings
        qualitative_stage(i.decision_per_image, i.decision, i.data, member_oofs(job), i.train, s["classes"],
                          job.wildcards.model,
                          figure_paths(job, "panel"), job.params.style, ignore=s["ignore"])

    def figure_study(self, study: str, job) -> None:
        from plexus.report.class_figures import study_figure
        from plexus.report.figures import save

        save(study_figure(study, read_table(job.input.scores), job.params.style), [job.output.png, job.output.pdf])


TASK = ClassesTask(
    name="classes",
    score="mean Dice",
    formats=("folders", "sheet", "volumes"),
    tta=True,
    figures={
        "figure_tuning": (Figure("min_area", "tuning/{name}_min_area", "class_min_area.rst", "Tuning"),),
        "figure_qualitative": (Figure("panel", "qualitative/{model}", "class_qualitative.rst", "Predictions"),),
    },
)
