"""Task ``regions``: labels scored as nested regions, as the brain-tumour studies score them.

Each pixel carries one label (``classes:``, e.g. necrosis, edema, non-enhancing and enhancing
tumour); the study is judged on regions (``regions:``), each the union of some labels, which may
nest or overlap (complete = every tumour label, core = all but edema, enhancing). Its formats are
``folders`` and ``sheet``; training and prediction are the shared stages.

* **Region probabilities.** A model trained on the labels (``region_training: labels``, a softmax)
  gives region ``r`` the sum of its labels' probabilities; a model trained on the regions
  (``region_training: regions``, one sigmoid per region, nnU-Net's region-based training) gives
  them directly. An ensemble averages its members' region probabilities at each image's own size.
* **Decision.** Per region, a cutoff x minimum component area (pixels of the original image,
  8-connected) tuned on the OOF predictions to maximise the mean per-image Dice of that region
  (empty prediction on empty truth: 1), ties to the first grid point; the cross-fitted score
  scores each fold at the setting chosen on the other folds (:func:`plexus.evaluation.crossfit.
  choose_per_fold`); flip TTA is a candidate under the bootstrap rule (the base task's), then each
  region's map replaced by a two-label dense CRF of it and the image (as the binary task's), its Otsu
  threshold or hysteresis seed level in place of its cutoff, its largest component and its filled
  holes (:meth:`RegionsTask.map_candidates`).
* **Outputs.** A label map per test image keeps the nesting: a pixel takes the *innermost* region
  (the one uniting the fewest labels; ties: the later in ``regions:``) whose final mask holds it,
  written as that region's 1-based index in ``regions:`` (0: none). The submission has one
  run-length row per image and region (each region's own final mask).
* **Second rater.** Where the sheet's ``mask_rater2`` holds another expert's masks, that rater is
  scored against the first with the same per-region metrics and shown beside every model and
  ensemble on the same images (never tuned on).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import (
    check_aligned,
    load_oof,
    member_arrays,
    read_folds,
    read_json,
    read_manifest,
    read_npz,
    read_per_image,
    read_table,
)
from plexus.labels import region_matrix
from plexus.tasks.base import (
    Figure,
    Task,
    choose_map_steps,
    figure_paths,
    map_step_candidates,
    member_oofs,
    noise_files,
    step_variants,
    tuning_record,
    write_submission_summary,
)

METRICS = ("dice", "iou", "sensitivity", "precision")
#: the post-processing candidates a region map tries: flip TTA, then the map steps of
#: :data:`plexus.tasks.base.UNIT_STEPS` on each region's own map (one-vs-rest, per image): the map
#: replaced by its two-label dense-CRF marginals with the image (crf, :func:`region_crf`), its Otsu
#: threshold instead of its tuned cutoff, or hysteresis (seeds above a level grown to its tuned
#: cutoff), then its largest component and filled holes (the tuned minimum area is remove_small's part)
REGION_CANDIDATES = ("tta", "crf", "otsu", "hysteresis", "largest_component", "fill_holes")


# --------------------------------------------------------------------------- regions of a label map


def nesting_order(matrix: np.ndarray) -> list[int]:
    """Region indices from the outermost to the innermost: by decreasing number of labels, ties in
    ``regions:`` order (so the later of two equal regions is painted last, i.e. wins)."""
    sizes = matrix.sum(axis=1)
    return sorted(range(len(matrix)), key=lambda r: (-int(sizes[r]), r))


def region_truths(label: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R, H, W)`` bool truth of every region of a class-index map, and the ``(H, W)`` pixels that
    count (not :data:`~plexus.labels.IGNORE_LABEL`)."""
    from plexus.evaluation.raters import unit_masks

    return unit_masks(label, matrix)


def region_probs(prob: np.ndarray, matrix: np.ndarray, mode: str) -> np.ndarray:
    """``(R, h, w)`` region probabilities of one image's model output: the sum of each region's label
    probabilities (``mode`` labels: a softmax ``(K, h, w)``), or the output itself (``regions``)."""
    prob = np.asarray(prob, dtype=np.float32)
    if mode == "regions":
        if prob.shape[0] != len(matrix):
            raise ValueError(f"a region-trained model gives {len(matrix)} maps, got {prob.shape[0]}")
        return prob
    if prob.shape[0] != matrix.shape[1]:
        raise ValueError(f"a label-trained model gives {matrix.shape[1]} class maps, got {prob.shape[0]}")
    return np.clip(np.tensordot(matrix.astype(np.float32), prob, axes=(1, 0)), 0.0, 1.0)


def member_region_maps(member_probs, modes, matrix, manifest: pd.DataFrame, image_ids):
    """Per image of ``image_ids``, the members' region probabilities averaged at its own size."""
    from plexus.postprocess.multiclass import upsample_probs

    sizes = manifest.set_index("image_id").loc[list(image_ids), ["height", "width"]].astype(int)
    for i, (h, w) in enumerate(zip(sizes["height"], sizes["width"])):
        maps = [upsample_probs(region_probs(m[i], matrix, mode), (h, w)) for m, mode in zip(member_probs, modes)]
        yield sum(maps) / len(maps)


def region_counts(prob: np.ndarray, truth: np.ndarray, valid: np.ndarray, cutoffs, min_areas) -> np.ndarray:
    """``(C, A, 4)`` int64 counts ``tp, fp, fn, true_area`` of one region's map at every cutoff and
    minimum area: ``prob > cutoff``, then its 8-connected components below the area (all their
    pixels counted) removed; ignored pixels count in no total. The components and the size rule
    are :mod:`plexus.postprocess.components`' (:func:`final_mask` applies them)."""
    from plexus.postprocess.components import kept_objects, label_components

    truth = truth & valid
    true_area = int(truth.sum())
    out = np.zeros((len(cutoffs), len(min_areas), 4), dtype=np.int64)
    for c, cutoff in enumerate(cutoffs):
        components = label_components(prob > cutoff)
        if components is None:
            out[c, :, 2] = out[c, :, 3] = true_area
            continue
        box, labels, sizes = components
        counted = np.bincount(labels[valid[box]], minlength=len(sizes))
        inter = np.bincount(labels[truth[box]], minlength=len(sizes))
        keep = np.stack([kept_objects(sizes, area) for area in min_areas]).astype(np.int64)  # (A, n + 1)
        tp, pred = keep @ inter, keep @ counted
        out[c, :, 0], out[c, :, 1], out[c, :, 2], out[c, :, 3] = tp, pred - tp, true_area - tp, true_area
    return out


def final_mask(prob: np.ndarray, cutoff: float, min_area: int, *, largest_only: bool = False,
               fill_holes: bool = False, otsu: bool = False, hysteresis_high: float | None = None) -> np.ndarray:
    """One region's decided mask: ``prob > cutoff`` (``otsu``: above the map's own Otsu threshold,
    :func:`plexus.postprocess.candidates.otsu_threshold`, instead; ``hysteresis_high`` above
    ``cutoff``: the components of ``prob > cutoff`` holding a pixel above it,
    :func:`plexus.postprocess.candidates.hysteresis`; at or below ``cutoff`` it changes nothing)
    without its 8-connected components below ``min_area``
    (:func:`plexus.postprocess.components.remove_small_components`), then the kept map steps: only
    its largest component, its holes filled (:func:`plexus.postprocess.candidates.fill_holes`)."""
    from plexus.postprocess.components import remove_small_components

    if otsu and hysteresis_high is not None:
        raise ValueError("otsu and hysteresis are alternatives: give one of them")
    if otsu:
        from plexus.postprocess.candidates import otsu_threshold

        mask = prob > otsu_threshold(prob)
    elif hysteresis_high is not None and hysteresis_high > cutoff:
        from plexus.postprocess.candidates import hysteresis

        mask = hysteresis(prob, cutoff, float(hysteresis_high))
    else:
        mask = prob > cutoff
    mask = remove_small_components(mask, int(min_area), largest_only=largest_only)
    if fill_holes:
        from plexus.postprocess.candidates import fill_holes as fill

        mask = fill(mask)
    return mask


def region_crf(prob: np.ndarray, image: np.ndarray, crf_settings: dict | None = None) -> np.ndarray:
    """float32 ``(R, H, W)``: each region's map of ``prob`` ``(R, H, W)`` replaced by the foreground
    marginals of its own two-label dense CRF with the gray ``image`` ``(H, W)``, exactly the binary
    task's (:func:`plexus.postprocess.candidates.dense_crf` of one map) at ``crf_settings``
    (``postprocess.crf``; :data:`~plexus.postprocess.candidates.CRF_DEFAULTS` for those not given)."""
    from plexus.postprocess.candidates import CRF_DEFAULTS, dense_crf

    settings = {**CRF_DEFAULTS, **(crf_settings or {})}
    return np.stack([dense_crf(region, image, **settings) for region in np.asarray(prob)])


def final_masks(prob: np.ndarray, cutoffs, areas, pipeline: dict | None = None, image: np.ndarray | None = None,
                crf_settings: dict | None = None) -> np.ndarray:
    """``(R, H, W)``: every region's :func:`final_mask` at its cutoff and minimum area, with the steps
    a decision's ``pipeline`` kept (``crf``: each region's map replaced by its CRF marginals with the
    gray ``image`` at ``crf_settings`` first, :func:`region_crf`; ``otsu``, ``hysteresis_high``,
    ``largest_only``, ``fill_holes``: :data:`plexus.tasks.base.UNIT_STEPS`; a seed level applies to the
    regions whose cutoff is below it)."""
    pipeline = pipeline or {}
    if pipeline.get("crf"):
        if image is None:
            raise ValueError("a decision with crf needs the image of each map")
        prob = region_crf(prob, image, crf_settings)
    high = pipeline.get("hysteresis_high")
    steps = {"otsu": bool(pipeline.get("otsu")), "hysteresis_high": None if high is None else float(high),
             "largest_only": bool(pipeline.get("largest_only")), "fill_holes": bool(pipeline.get("fill_holes"))}
    return np.stack([final_mask(prob[r], cutoffs[r], areas[r], **steps) for r in range(len(cutoffs))])


def nested_label_map(masks: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8: each pixel the 1-based index of the innermost region whose mask holds it."""
    out = np.zeros(masks.shape[1:], dtype=np.uint8)
    for r in nesting_order(matrix):
        out[masks[r]] = r + 1
    return out


def crf_images(manifest: pd.DataFrame, image_ids):
    """``k -> the gray image of image_ids[k]`` (read when asked), from ``manifest``'s image column: the
    image the crf candidate reads, as the binary task's (:func:`plexus.data.truth.image_paths`)."""
    from plexus.data.truth import image_paths, read_gray

    paths = image_paths(manifest, list(image_ids))
    return lambda k: read_gray(paths[k])


def pipeline_settings(best: dict, names) -> tuple[list[float], list[int]]:
    """The tuned cutoff and minimum area of every region (in ``regions:`` order) of a ``best.json``
    (or a decision's pipeline)."""
    regions = best["regions"]
    return [float(regions[n]["cutoff"]) for n in names], [int(regions[n]["min_area"]) for n in names]


# --------------------------------------------------------------------------- tuning


def _label_truths(train: pd.DataFrame, image_ids, classes: dict, ignore: dict | None, column: str = "mask"):
    from plexus.data import dataset

    rows = train.set_index("image_id").loc[list(image_ids)]
    for path in rows[column]:
        yield dataset.read_class_mask(path, classes, ignore=ignore)


def grid_counts(maps, labels, matrix: np.ndarray, grid_cutoffs, grid_areas) -> np.ndarray:
    """``(N, R, C, A, 4)`` :func:`region_counts` of every image (its region maps and label map)."""
    counts = []
    for prob, label in zip(maps, labels):
        truth, valid = region_truths(label, matrix)
        counts.append([region_counts(prob[r], truth[r], valid, grid_cutoffs, grid_areas) for r in range(len(matrix))])
    return np.asarray(counts, dtype=np.int64)


def grid_choice(cutoffs, min_areas, grid_cutoffs, grid_areas) -> np.ndarray:
    """The flat (cutoff-major) indices of the config's grid points among the scored ones."""
    return np.flatnonzero([c in cutoffs and a in min_areas for c in grid_cutoffs for a in grid_areas])


def tune_stage(member_oofs: dict[str, list], modes: dict[str, str], folds_csv, train_csv, classes: dict,
               regions: dict, cutoffs, min_areas, *, grid_csv, best_json, per_image_csv, ignore: dict | None = None,
               key: str = "prob") -> dict:
    """Tune each region's cutoff x minimum area on the OOF predictions; per-image scores untuned
    (cutoff 0.5, no area), tuned and cross-fitted."""
    from plexus.evaluation.crossfit import choose_per_fold
    from plexus.evaluation.multiclass import scores_from_counts

    names = list(regions)
    matrix = region_matrix(regions, classes)
    cutoffs, min_areas = [float(c) for c in cutoffs], [int(a) for a in min_areas]
    grid_cutoffs = sorted(set(cutoffs) | {0.5})
    grid_areas = sorted(set(min_areas) | {0})
    folds, train = read_folds(folds_csv), read_manifest(train_csv)
    ids = folds["image_id"].astype(str).tolist()
    probs = member_arrays(member_oofs, ids, key)
    maps = member_region_maps(probs, [modes[m] for m in member_oofs], matrix, train, ids)
    counts = grid_counts(maps, _label_truths(train, ids, classes, ignore), matrix, grid_cutoffs, grid_areas)
    n, n_regions = counts.shape[:2]
    dice = scores_from_counts(counts)["dice"].reshape(n, n_regions, -1)  # (N, R, C*A), cutoff-major
    # the tuned grid is the config's (the untuned point is scored, not chosen, unless it is on it)
    choice = grid_choice(cutoffs, min_areas, grid_cutoffs, grid_areas)
    means = dice.mean(axis=0)  # (R, C*A)
    best_index = choice[np.argmax(means[:, choice], axis=1)]
    held_out, _ = choose_per_fold(dice[:, :, choice], folds["fold"].to_numpy())
    untuned_index = grid_cutoffs.index(0.5) * len(grid_areas) + grid_areas.index(0)
    flat = counts.reshape(n, n_regions, -1, 4)
    tuned = scores_from_counts(flat[:, np.arange(n_regions), best_index])
    untuned = scores_from_counts(flat[:, :, untuned_index])
    rows = []
    for i in range(n):
        for r, name in enumerate(names):
            rows.append({"image_id": ids[i], "subject": folds["subject"].iloc[i], "fold": int(folds["fold"].iloc[i]),
                         "region": name, "dice_untuned": float(untuned["dice"][i, r]),
                         **{m: float(tuned[m][i, r]) for m in METRICS},
                         "dice_cross_fitted": float(held_out[i, r]),
                         "true_area": int(tuned["true_area"][i, r]), "pred_area": int(tuned["pred_area"][i, r])})
    per_image = pd.DataFrame(rows)
    setting = [(c, a) for c in grid_cutoffs for a in grid_areas]
    grid = pd.DataFrame([{"region": name, "cutoff": setting[g][0], "min_area": setting[g][1],
                          "dice": float(means[r, g])}
                         for r, name in enumerate(names) for g in choice])
    summary = tuning_record({
        "task": "regions", "members": list(member_oofs), "score_name": TASK.score,
        "untuned_score": float(per_image["dice_untuned"].mean()), "score": float(per_image["dice"].mean()),
        "cross_fitted_score": float(per_image["dice_cross_fitted"].mean()), "n_images": n,
    }, {"regions": {name: {"cutoff": setting[best_index[r]][0], "min_area": setting[best_index[r]][1],
                           "dice": float(means[r, best_index[r]]), "dice_untuned": float(means[r, untuned_index])}
                    for r, name in enumerate(names)},
        "modes": {m: modes[m] for m in member_oofs}})
    atomic.write_csv(grid_csv, grid)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, summary)
    print(json.dumps(summary, indent=1))
    return summary


# --------------------------------------------------------------------------- the second rater


def rater2_frame(train_csv, classes: dict, regions: dict, ignore: dict | None = None) -> pd.DataFrame:
    """Per rated image and region: the second rater against the first
    (:func:`plexus.evaluation.raters.rater2_frame`)."""
    from plexus.evaluation.raters import rater2_frame as score_rater2

    return score_rater2(read_manifest(train_csv), classes, region_matrix(regions, classes), list(regions), "region",
                        ignore=ignore)


# --------------------------------------------------------------------------- test predictions


def labelmaps_stage(member_means: list, modes: list[str], test_csv, pipeline: dict, classes: dict, regions: dict,
                    out_dir, submission_csv, key: str = "prob", crf_settings: dict | None = None) -> None:
    """Test label maps (the innermost region per pixel, at each image's size) and one run-length row
    per image and region; a ``crf`` decision reads the test images of ``test_csv`` (at ``crf_settings``)."""
    from plexus.io.rle import encode
    from plexus.postprocess.multiclass import write_label_map

    test = read_manifest(test_csv)
    runs = [read_npz(p) for p in member_means]
    for path, run in zip(member_means, runs):
        check_aligned(run["image_id"], runs[0]["image_id"], path, member_means[0])
    ids = runs[0]["image_id"].astype(str)
    matrix, names = region_matrix(regions, classes), list(regions)
    cutoffs, areas = pipeline_settings(pipeline, names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = crf_images(test, ids) if pipeline.get("crf") else None
    rows = []
    for k, (image_id, prob) in enumerate(zip(ids, member_region_maps([r[key] for r in runs], modes, matrix, test,
                                                                     ids))):
        masks = final_masks(prob, cutoffs, areas, pipeline, None if images is None else images(k), crf_settings)
        write_label_map(out_dir / f"{image_id}.png", nested_label_map(masks, matrix), list(range(len(names) + 1)))
        rows += [{"image_id": image_id, "region": name, "EncodedPixels": encode(masks[r])}
                 for r, name in enumerate(names)]
    atomic.write_csv(submission_csv, pd.DataFrame(rows, columns=["image_id", "region", "EncodedPixels"]))
    print(f"{len(ids)} label maps in {out_dir}; {len(rows)} rows in {submission_csv}")


# --------------------------------------------------------------------------- robustness


def _fold_region_dice(maps, truths, fold_of, pipeline: dict, matrix, names) -> list[dict]:
    from plexus.evaluation.multiclass import scores_from_counts

    cutoffs, areas = pipeline_settings(pipeline, names)
    dice = []
    for prob, label in zip(maps, truths):
        truth, valid = region_truths(label, matrix)
        counts = [region_counts(prob[r], truth[r], valid, [cutoffs[r]], [areas[r]])[0, 0] for r in range(len(names))]
        dice.append(scores_from_counts(np.asarray(counts))["dice"])
    dice, fold_of = np.asarray(dice), np.asarray(fold_of)
    return [{"fold": int(f), "class": names[r], "dice": float(dice[fold_of == f, r].mean())}
            for f in np.unique(fold_of) for r in range(len(names))]


# --------------------------------------------------------------------------- figures


def tuning_figure(grid: pd.DataFrame, best: dict, title: str, style=None):
    """Per region, the mean OOF Dice over cutoff x minimum area, the tuned setting circled."""
    import matplotlib.pyplot as plt

    from plexus.report.figures import apply_style

    apply_style(style)
    names = list(dict.fromkeys(grid["region"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        part = grid[grid["region"] == name].pivot_table(index="min_area", columns="cutoff", values="dice")
        image = ax.imshow(part.to_numpy(), origin="lower", aspect="auto", cmap=(style or {}).get("cmap", "viridis"),
                          vmin=0, vmax=1)
        ax.set_xticks(range(part.shape[1]), [f"{c:g}" for c in part.columns], fontsize="x-small")
        ax.set_yticks(range(part.shape[0]), [str(a) for a in part.index], fontsize="x-small")
        chosen = best["regions"][name]
        ax.scatter([list(part.columns).index(chosen["cutoff"])], [list(part.index).index(chosen["min_area"])],
                   s=90, facecolors="none", edgecolors="white", linewidths=1.5)
        ax.set_title(f"{name}: Dice {chosen['dice']:.3f}")
        ax.set_xlabel("cutoff")
        ax.set_ylabel("minimum area (px)")
    fig.colorbar(image, ax=axes[0, -1], label="mean OOF Dice")
    fig.suptitle(title)
    return fig


def panel_figure(images, truths, finals, image_ids, scores, labels, names, style=None, title=""):
    """Rows of (image, true nested map, final nested map): region index maps, innermost on top, one
    model's final decision; the legend names each region's colour (the same in both map columns)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from plexus.report.figures import apply_style

    apply_style(style)
    colors = ["black", "tab:green", "tab:orange", "tab:red", "tab:purple", "tab:blue", "tab:pink"][:len(names) + 1]
    cmap = ListedColormap(colors)
    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.5 * len(images)), squeeze=False)
    for row, (image, truth, final, image_id, score, label) in enumerate(
            zip(images, truths, finals, image_ids, scores, labels)):
        axes[row, 0].imshow(image, cmap="gray")
        axes[row, 0].set_title(f"{label}: {image_id}", fontsize="small")
        for col, (labelmap, text) in enumerate(((truth, "truth"), (final, f"final, mean Dice {score:.2f}")), 1):
            axes[row, col].imshow(labelmap, cmap=cmap, vmin=0, vmax=len(colors) - 1, interpolation="nearest")
            axes[row, col].set_title(text, fontsize="small")
    for ax in axes.flat:
        ax.set_axis_off()
    handles = [Patch(facecolor=colors[0], edgecolor="0.5", label="background (black)"),
               *(Patch(color=colors[r + 1], label=name) for r, name in enumerate(names))]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", title_fontsize="small",
               title="colour = innermost region holding the pixel, the same in the truth and final columns")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def rater_figure(table: pd.DataFrame, style=None):
    """Per region, the Dice of every model and ensemble on the images the second rater rated, with
    95% CIs, the second rater's (the human reference) as a line and band, and the all-background
    prediction's as a dotted red line; the panels share the Dice axis."""
    import matplotlib.pyplot as plt

    from plexus.report.figures import apply_style
    from plexus.report.run_summary import BASELINE_NAME
    from plexus.report.tables import RATER2_NAME

    apply_style(style)
    rated = table[(table["scope"] == "rated") & (table["metric"] == "dice")]
    names = [n for n in dict.fromkeys(rated["name"]) if n not in (RATER2_NAME, BASELINE_NAME)]
    regions = list(dict.fromkeys(rated["region"]))
    fig, axes = plt.subplots(1, len(regions), figsize=(3.4 * len(regions), 0.45 * len(names) + 1.8),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax, region in zip(axes[0], regions):
        part = rated[rated["region"] == region].set_index("name")
        if RATER2_NAME in part.index:
            human = part.loc[RATER2_NAME]
            ax.axvspan(human["lo"], human["hi"], color="0.85")
            ax.axvline(human["mean"], color="0.3", ls="--", label="second rater (95% CI)")
        if BASELINE_NAME in part.index and np.isfinite(part.loc[BASELINE_NAME, "mean"]):
            ax.axvline(part.loc[BASELINE_NAME, "mean"], color="tab:red", ls=":", lw=1.2,
                       label=f"all-background prediction: {part.loc[BASELINE_NAME, 'mean']:.3f}")
        for y, name in enumerate(names):
            if name in part.index:
                row = part.loc[name]
                ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["lo"]], [row["hi"] - row["mean"]]], fmt="o",
                            capsize=3, ms=4)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(region)
        ax.set_xlabel("Dice on the rated images")
        ax.legend(loc="lower left", fontsize="x-small")
    fig.suptitle("Models, ensembles and the second rater on the same images")
    return fig


# --------------------------------------------------------------------------- the task


class RegionsTask(Task):
    def settings(self, stage: str, config: dict) -> dict:
        from plexus.config import grid_values, ignored_classes, learnt_classes

        classes, ignore, regions = learnt_classes(config), ignored_classes(config), config["regions"]
        tuning, summary, postprocess = config["tuning"], config["summary"], config["postprocess"]
        modes = {name: model.get("region_training", "labels") for name, model in config["models"].items()}
        common = {"classes": classes, "ignore": ignore, "regions": regions, "modes": modes}
        tune = {**common, "cutoffs": grid_values(tuning["cutoffs"]),
                "min_areas": grid_values(tuning["min_sizes"], integer=True)}
        boot = {"n_boot": summary["bootstrap_samples"], "seed": summary["seed"]}
        return {
            "tune": lambda: tune,
            "postprocess": lambda: {**tune, "candidates": [c for c in postprocess["candidates"]
                                                           if c in REGION_CANDIDATES],
                                    "hysteresis_highs": [float(h) for h in postprocess["hysteresis_highs"]],
                                    "crf": postprocess["crf"],
                                    "n_boot": postprocess["bootstrap_samples"], "seed": postprocess["seed"],
                                    "min_gain": postprocess["min_gain"]},
            "submission": lambda: common,
            "volumes": lambda: common,
            "summary_table": lambda: {**common, **boot},
            "comparison": lambda: {**common, **boot},
            "noise_scores": lambda: common,
            "train_size_scores": lambda: common,
            "missing_channel_scores": lambda: {**common, "batch_size": config["predict"]["batch_size"]},
            "figure_qualitative": lambda: common,
        }.get(stage, dict)()

    def units(self, settings: dict) -> tuple[list[str], np.ndarray]:
        return list(settings["regions"]), region_matrix(settings["regions"], settings["classes"])

    def decided_unit_masks(self, settings: dict, members: dict[str, list[str]], manifest, image_ids, decision: dict):
        pipeline = decision["pipeline"]
        names, matrix = self.units(settings)
        cutoffs, areas = pipeline_settings(pipeline, names)
        probs = member_arrays(members, list(image_ids), "prob_tta" if pipeline.get("tta") else "prob")
        modes = [settings["modes"][m] for m in members]
        images = crf_images(manifest, image_ids) if pipeline.get("crf") else None
        for k, prob in enumerate(member_region_maps(probs, modes, matrix, manifest, image_ids)):
            yield final_masks(prob, cutoffs, areas, pipeline, None if images is None else images(k),
                              decision.get("crf_settings"))

    def unit_values(self, settings: dict) -> list[int]:
        """Each region's 1-based index, painted from the outermost to the innermost as the 2-D label
        maps are (:func:`nested_label_map`)."""
        return list(range(1, len(settings["regions"]) + 1))

    def config_errors(self, config: dict) -> list[str]:
        from plexus.config import learnt_classes

        errors = super().config_errors(config)
        regions, classes = config["regions"], learnt_classes(config)
        if not regions:
            errors.append("regions: task 'regions' needs at least one region (name: [classes])")
        for name, members in regions.items():
            bad = [m for m in members if m not in classes or m == next(iter(classes))]
            if bad:
                errors.append(f"regions.{name}: {', '.join(map(repr, bad))} is not a learnt foreground class "
                              f"({list(classes)[1:]})")
        for name, model in config["models"].items():
            if model.get("region_training", "labels") == "regions" and model.get("presence_head"):
                errors.append(f"models.{name}: a region-trained model has no presence head")
        return errors

    def map_candidates(self, job, per_image, pipeline: dict, decisions: list, fold_tta: dict[int, bool]):
        """Each region's map replaced by the marginals of its two-label dense CRF with the image
        (``crf``, first: :func:`region_crf` at ``postprocess.crf``, on each image's file of the training
        manifest, as the binary task's), each region's own Otsu threshold instead of its tuned cutoff
        (``otsu``) or hysteresis seeded
        above a level and grown to its tuned cutoff (``hysteresis``: each of
        ``postprocess.hysteresis_highs`` above at least one region's cutoff, the best kept; it applies to
        the regions whose cutoff is below it), then its largest component and its filled holes
        (``largest_component``, ``fill_holes``), with its tuned minimum area (:func:`final_masks`,
        :func:`plexus.tasks.base.choose_map_steps`); a fold's setting is the cutoffs and areas tuned on
        the other folds, as the tuning's cross-fitted score has them."""
        from plexus.evaluation.crossfit import choose_per_fold
        from plexus.evaluation.multiclass import class_counts, scores_from_counts

        s = job.params.settings
        candidates = map_step_candidates(s["candidates"])
        levels = [float(h) for h in s.get("hysteresis_highs", ())]
        if not candidates:
            return per_image, pipeline
        names, matrix = list(s["regions"]), region_matrix(s["regions"], s["classes"])
        folds, train = read_folds(job.input.folds), read_manifest(job.input.train)
        ids = folds["image_id"].astype(str).tolist()
        if per_image["image_id"].astype(str).tolist() != ids:
            raise ValueError(f"{job.input.per_image}: its images are not the folds' in their order")
        labels = list(_label_truths(train, ids, s["classes"], s["ignore"]))
        truths = [region_truths(label, matrix) for label in labels]
        modes = [s["modes"][m] for m in member_oofs(job)]
        maps: dict[tuple[bool, bool], list] = {}
        fold_settings: dict[bool, dict] = {}

        def maps_of(tta: bool, crf: bool = False) -> list:
            """Each image's region maps, or with ``crf`` their CRF marginals (computed once, on every image)."""
            if (tta, crf) not in maps:
                if crf:
                    images = crf_images(train, ids)
                    maps[tta, crf] = [region_crf(p, images(k), s.get("crf")) for k, p in enumerate(maps_of(tta))]
                else:
                    probs = member_arrays(member_oofs(job), ids, "prob_tta" if tta else "prob")
                    maps[tta, crf] = list(member_region_maps(probs, modes, matrix, train, ids))
            return maps[tta, crf]

        def scores(tta: bool, setting, steps: dict, rows) -> np.ndarray:
            # the crf is applied here once per image (maps_of): final_masks gets its marginals
            crf, steps = bool(steps.get("crf")), {k: v for k, v in steps.items() if k != "crf"}
            out = np.full(len(ids), np.nan)
            for i in rows:
                (truth, valid), masks = truths[i], final_masks(maps_of(tta, crf)[i], *setting, steps)
                counts = [class_counts((masks[r] & valid).astype(np.uint8), truth[r].astype(np.uint8), 2)[0]
                          for r in range(len(names))]
                out[i] = float(np.mean(scores_from_counts(np.asarray(counts))["dice"]))
            return out

        def fold_setting(tta: bool, fold: int):
            if tta not in fold_settings:
                cutoffs, areas = [float(c) for c in s["cutoffs"]], [int(a) for a in s["min_areas"]]
                grid_cutoffs, grid_areas = sorted(set(cutoffs) | {0.5}), sorted(set(areas) | {0})
                counts = grid_counts(maps_of(tta), labels, matrix, grid_cutoffs, grid_areas)
                dice = scores_from_counts(counts)["dice"].reshape(len(ids), len(names), -1)
                choice = grid_choice(cutoffs, areas, grid_cutoffs, grid_areas)
                _, chosen = choose_per_fold(dice[:, :, choice], folds["fold"].to_numpy())
                points = [(c, a) for c in grid_cutoffs for a in grid_areas]
                fold_settings[tta] = {int(k): ([points[choice[g]][0] for g in best],
                                               [points[choice[g]][1] for g in best]) for k, best in chosen.items()}
            return fold_settings[tta][fold]

        def variants(candidate: str, setting, steps: dict) -> list[dict]:
            # a level at or below every region's cutoff would change no mask: not tried
            return step_variants(candidate, steps, [h for h in levels if h > min(setting[0])])

        return choose_map_steps(per_image, pipeline, decisions, fold_tta, candidates=candidates, variants=variants,
                                scores=scores, final_setting=pipeline_settings(pipeline, names),
                                fold_setting=fold_setting, subjects=folds["subject"].to_numpy(),
                                fold_of=folds["fold"].to_numpy(),
                                boot={"n_boot": s["n_boot"], "seed": s["seed"],
                                      "min_gain": float(s.get("min_gain", 0.0))})

    def tune_into(self, job, key: str, outputs: dict) -> None:
        i, s = job.input, job.params.settings
        tune_stage(member_oofs(job), s["modes"], i.folds, i.train, s["classes"], s["regions"], s["cutoffs"],
                   s["min_areas"], grid_csv=outputs["grid"], best_json=outputs["best"],
                   per_image_csv=outputs["per_image"], ignore=s["ignore"], key=key)

    def submission(self, job) -> None:
        i, o, s = job.input, job.output, job.params.settings
        decision = read_json(i.decision)
        pipeline = decision["pipeline"]
        modes = [s["modes"][m] for m in decision["members"]]
        labelmaps_stage(list(i.means), modes, i.test, pipeline, s["classes"], s["regions"], o.labelmaps, o.csv,
                        key="prob_tta" if pipeline.get("tta") else "prob", crf_settings=decision.get("crf_settings"))
        write_submission_summary(o.csv, o.summary, decision)

    def summary_table(self, job) -> None:
        from plexus.report.tables import unit_markdown, unit_table

        i, o, p, s = job.input, job.output, job.params, job.params.settings
        frames = {name: read_per_image(path) for name, path in zip(p.names, i.per_image)}
        rater2 = rater2_frame(i.train, s["classes"], s["regions"], s["ignore"])
        table = unit_table(frames, list(s["regions"]), "region", n_boot=s["n_boot"], seed=s["seed"], rater2=rater2)
        atomic.write_csv(o.csv, table)
        atomic.write_text(o.md, unit_markdown(table, "region"))
        print(unit_markdown(table, "region"))

    def comparison(self, job) -> None:
        """The comparison and pairwise tables of the mean region Dice; the models figure: every model
        and ensemble per region on the second rater's images, beside that rater (the human reference) and
        the all-background prediction; without a second rater, the comparison figure of the mean Dice
        with the all-background prediction's."""
        from plexus.report.comparison import unit_empty_baseline
        from plexus.report.figures import save
        from plexus.report.tables import unit_table
        from plexus.stages.comparison import score_comparison_stage

        p, s = job.params, job.params.settings
        rater2 = rater2_frame(job.input.train, s["classes"], s["regions"], s["ignore"])
        frames = {name: read_per_image(path) for name, path in zip(p.names, job.input.tuned_per_image)}
        score_comparison_stage(job, self.score, draw_models=rater2.empty,
                               baseline=unit_empty_baseline(next(iter(frames.values()))))
        if not rater2.empty:
            table = unit_table(frames, list(s["regions"]), "region", n_boot=s["n_boot"], seed=s["seed"],
                               rater2=rater2)
            save(rater_figure(table, p.style), [job.output.png, job.output.pdf])

    def _study_maps(self, job, probs: list, ids, modes):
        s = job.params.settings
        train = read_manifest(job.input.train)
        matrix = region_matrix(s["regions"], s["classes"])
        maps = member_region_maps(probs, modes, matrix, train, ids)
        return maps, list(_label_truths(train, ids, s["classes"], s["ignore"])), matrix

    def noise_scores(self, job) -> None:
        s, best = job.params.settings, read_json(job.input.best)
        mode = list(best["modes"].values())  # the robustness model's own
        rows = []
        for (condition, sigma), path in sorted(noise_files(job).items()):
            run = read_npz(path)
            ids = run["image_id"].astype(str).tolist()
            maps, truths, matrix = self._study_maps(job, [run["prob"]], ids, mode)
            for row in _fold_region_dice(maps, truths, run["fold"], best, matrix, list(s["regions"])):
                rows.append({"condition": condition, "sigma": float(sigma), **row})
        atomic.write_csv(job.output[0], pd.DataFrame(rows, columns=["condition", "sigma", "fold", "class", "dice"]))

    def train_size_scores(self, job) -> None:
        i, s, best = job.input, job.params.settings, read_json(job.input.best)
        mode = list(best["modes"].values())  # the robustness model's own
        folds = read_folds(i.folds)
        ids = folds["image_id"].astype(str).tolist()
        rows = []
        for key, seed in [(k, sd) for k, _, sd in job.params.entries] + [("full", 0)]:
            n_train = [json.loads(Path(path).read_text())["n_train"] for path in i[f"info_{key}"]]
            maps, truths, matrix = self._study_maps(job, [load_oof(list(i[key]), ids)], ids, mode)
            for row in _fold_region_dice(maps, truths, folds["fold"].to_numpy(), best, matrix, list(s["regions"])):
                rows.append({"run": key, "n_train": n_train[row["fold"]], "seed": seed, **row})
        atomic.write_csv(job.output[0], pd.DataFrame(rows, columns=["run", "n_train", "seed", "fold", "class", "dice"]))

    def missing_channel_scores(self, job) -> None:
        from plexus.data import splits
        from plexus.inference.predict import predict_probs

        i, s, best = job.input, job.params.settings, read_json(job.input.best)
        mode = list(best["modes"].values())  # the robustness model's own
        data, folds = read_npz(i.data), read_folds(i.folds)
        check_aligned(data["image_id"], folds["image_id"], i.data, i.folds)
        channels = json.loads(Path(i.summary).read_text())["input_channels"]
        ids = folds["image_id"].astype(str).tolist()
        rows = []
        for removed in [None, *range(len(channels))]:
            probs = None
            for fold, model_pt in enumerate(i.models):
                _, val = splits.fold_indices(folds, fold)
                out = predict_probs(model_pt, data["images"][val], present=data["present"][val], drop_channel=removed,
                                    batch_size=s["batch_size"], threads=job.threads)["prob"]
                if probs is None:
                    probs = np.empty((len(ids), *out.shape[1:]), np.float16)
                probs[val] = out
            maps, truths, matrix = self._study_maps(job, [probs], ids, mode)
            for row in _fold_region_dice(maps, truths, folds["fold"].to_numpy(), best, matrix, list(s["regions"])):
                rows.append({"removed": "none" if removed is None else channels[removed], **row})
        atomic.write_csv(job.output[0], pd.DataFrame(rows, columns=["removed", "fold", "class", "dice"]))

    def figure_tuning(self, job) -> None:
        from plexus.report.figures import save

        best = read_json(job.input.best)
        fig = tuning_figure(read_table(job.input.grid), best, f"{job.wildcards.name}: cutoff x minimum area per region",
                            job.params.style)
        save(fig, figure_paths(job, "heatmap"))

    def figure_qualitative(self, job) -> None:
        """Best, median and worst OOF images of one model by the mean region Dice of its final
        decision, with the true and the final nested label maps at the image's own size."""
        from plexus.report.figures import save

        i, s = job.input, job.params.settings
        per_image = read_per_image(i.decision_per_image)
        scores = per_image.set_index("image_id")["postprocessed"].sort_values(ascending=False, kind="stable")
        ordered = scores.index.astype(str).tolist()
        picks = dict(zip(("best", "median", "worst"), [ordered[0], ordered[len(ordered) // 2], ordered[-1]]))
        ids = list(picks.values())
        decided = read_json(i.decision)
        pipeline = decided["pipeline"]
        names = list(s["regions"])
        model = job.wildcards.model
        members = member_oofs(job)  # one model's, or an ensemble's members (their maps averaged)
        probs = member_arrays(members, ids, "prob_tta" if pipeline.get("tta") else "prob")
        maps, truths, matrix = self._study_maps(job, probs, ids, [s["modes"][m] for m in members])
        cutoffs, areas = pipeline_settings(pipeline, names)
        images = crf_images(read_manifest(i.train), ids) if pipeline.get("crf") else None
        finals = [nested_label_map(final_masks(p, cutoffs, areas, pipeline, None if images is None else images(k),
                                               decided.get("crf_settings")), matrix) for k, p in enumerate(maps)]
        true_maps = [nested_label_map(region_truths(t, matrix)[0], matrix) for t in truths]
        data = read_npz(i.data)
        row_of = {image_id: row for row, image_id in enumerate(data["image_id"].astype(str))}
        images = [data["images"][row_of[k]][-1] for k in ids]  # the last channel (FLAIR in the example)
        fig = panel_figure(images, true_maps, finals, ids, [float(scores[k]) for k in ids], list(picks), names,
                           job.params.style,
                           title=f"{model}: best, median and worst OOF images at its final decision")
        save(fig, figure_paths(job, "panel"))

    def figure_study(self, study: str, job) -> None:
        from plexus.report.class_figures import study_figure
        from plexus.report.figures import save

        save(study_figure(study, read_table(job.input.scores), job.params.style), [job.output.png, job.output.pdf])


TASK = RegionsTask(
    name="regions",
    formats=("folders", "sheet", "volumes"),
    score="mean region Dice",
    tta=True,
    figures={
        "figure_tuning": (Figure("heatmap", "tuning/{name}_regions", "region_tuning.rst", "Tuning"),),
        "figure_qualitative": (Figure("panel", "qualitative/{model}", "region_qualitative.rst", "Predictions"),),
    },
)
