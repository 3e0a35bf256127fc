"""Post-processing decided on out-of-fold predictions, one candidate at a time.

Starting from the tuned cutoff x minimum area (x presence threshold), each candidate
of :data:`CANDIDATES` is tried in a fixed order on top of what is kept so far; a
candidate with options (component size, hysteresis seed level) takes its best option
on the OOF images. It is **kept only when the subject-bootstrap 95% interval of the
paired per-image difference (candidate - current) lies above 0**: a gain that a
resampling of subjects can erase is noise, not a gain.

:func:`select_many` runs several such selections in lockstep, each on its own rows
(all OOF images, or all but one fold for the cross-fitted estimate), sharing one
cache of per-image scores: every pipeline is scored once on every image, in one
streaming pass per candidate step, whatever the number of selections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from plexus.evaluation.bootstrap import paired_difference_ci
from plexus.evaluation.metrics import dice_from_counts
from plexus.postprocess.candidates import PostProcess

CANDIDATES = ("otsu", "hysteresis", "remove_small", "largest_component", "fill_holes")

#: (row indices, probabilities (b, H, W) float32 at the original size, truths (b, H, W) bool, presence (b,) or None)
Batch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def variants(current: PostProcess, candidate: str, options: dict) -> list[PostProcess]:
    """The pipelines that add ``candidate`` to ``current`` (one per option value)."""
    if candidate == "otsu":
        return [] if current.otsu or current.hysteresis_high is not None else [current.with_changes(otsu=True)]
    if candidate == "hysteresis":
        if current.otsu or current.hysteresis_high is not None:
            return []
        return [current.with_changes(hysteresis_high=float(h)) for h in options.get("hysteresis_highs", [])
                if h > current.cutoff]
    if candidate == "remove_small":
        return [current.with_changes(remove_below=int(s)) for s in options.get("component_sizes", []) if s > 0]
    if candidate == "largest_component":
        return [] if current.largest_only else [current.with_changes(largest_only=True)]
    if candidate == "fill_holes":
        return [] if current.fill_holes else [current.with_changes(fill_holes=True)]
    raise ValueError(f"unknown post-processing candidate {candidate!r}; known: {', '.join(CANDIDATES)}")


class ScoreCache:
    """Per-image Kaggle Dice of post-processing pipelines, computed in streaming passes."""

    def __init__(self, batches: Callable[[], Iterator[Batch]], n_images: int):
        self._batches = batches
        self.n_images = n_images
        self.scores: dict[PostProcess, np.ndarray] = {}
        self.passes = 0

    def ensure(self, pipelines: Iterable[PostProcess]) -> None:
        missing = [p for p in dict.fromkeys(pipelines) if p not in self.scores]
        if not missing:
            return
        out = {p: np.full(self.n_images, np.nan) for p in missing}
        for rows, probs, truths, presence in self._batches():
            for i, row in enumerate(rows):
                truth = truths[i]
                true_area = int(truth.sum())
                gate = None if presence is None else float(presence[i])
                for pipeline in missing:
                    mask = pipeline.apply(probs[i], gate)
                    pred_area = int(mask.sum())
                    inter = int(np.count_nonzero(mask & truth)) if pred_area and true_area else 0
                    out[pipeline][row] = dice_from_counts(inter, pred_area, true_area)
        for pipeline, values in out.items():
            if np.isnan(values).any():
                raise ValueError("the OOF batches did not cover every image")
            self.scores[pipeline] = values
        self.passes += 1


@dataclass
class Selection:
    rows: np.ndarray  # the images this selection decides on
    current: PostProcess
    decisions: list[dict] = field(default_factory=list)


def select_many(cache: ScoreCache, selections: list[Selection], subjects: np.ndarray, options: dict, *,
                n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> list[Selection]:
    """Run the candidate steps of every selection in lockstep (one cache pass per step)."""
    subjects = np.asarray(subjects)
    cache.ensure(s.current for s in selections)
    for candidate in options.get("candidates", CANDIDATES):
        cache.ensure(p for s in selections for p in variants(s.current, candidate, options))
        for s in selections:
            tried = variants(s.current, candidate, options)
            if not tried:
                continue
            base = cache.scores[s.current][s.rows]
            best = max(tried, key=lambda p: cache.scores[p][s.rows].mean())
            frame = pd.DataFrame({"subject": subjects[s.rows], "with": cache.scores[best][s.rows], "without": base})
            ci = paired_difference_ci(frame, "with", "without", n_boot=n_boot, seed=seed, level=level)
            keep = bool(ci["low"] > 0)
            s.decisions.append({
                "candidate": candidate, "setting": _change(s.current, best),
                "score_without": float(base.mean()), "score_with": float(frame["with"].mean()),
                "difference": ci["mean"], "ci_low": ci["low"], "ci_high": ci["high"], "kept": keep,
            })
            if keep:
                s.current = best
    return selections


def _change(before: PostProcess, after: PostProcess) -> dict:
    a, b = before.to_dict(), after.to_dict()
    return {k: v for k, v in b.items() if a[k] != v}
