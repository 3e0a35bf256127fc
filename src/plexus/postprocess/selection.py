"""Post-processing decided on out-of-fold predictions, one candidate at a time.

Starting from the tuned cutoff x minimum area (x presence threshold), each candidate
of :data:`CANDIDATES` is tried in a fixed order on top of what is kept so far (``tta``
swaps in the flip-averaged maps at the same cutoff, ``crf`` smooths the maps with the
image before thresholding); a
candidate with options (component size, hysteresis seed level) takes its best option
on the OOF images. It is **kept only when the subject-bootstrap 95% interval of the
paired per-image difference (candidate - current) lies above 0**: a gain that a
resampling of subjects can erase is noise, not a gain; and, with ``options["min_gain"]``
(``postprocess.min_gain``, default 0), only when its mean gain is at least that
(:func:`plexus.evaluation.crossfit.keep_candidate`, every task's rule).

:func:`select_many` runs several such selections in lockstep, each on its own rows
(all OOF images, or all but one fold for the cross-fitted estimate), sharing one
cache of per-image scores: every pipeline is scored once on every image, in one
streaming pass per candidate step, whatever the number of selections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from plexus.evaluation.crossfit import decision, keep_candidate
from plexus.evaluation.metrics import dice_from_counts
from plexus.postprocess.candidates import PostProcess

CANDIDATES = ("tta", "crf", "otsu", "hysteresis", "remove_small", "largest_component", "fill_holes")


@dataclass
class Batch:
    """Consecutive OOF images at the original size, with what the pipelines may need."""

    rows: np.ndarray  # their row indices
    truths: np.ndarray  # (b, H, W) bool
    probs: np.ndarray | None = None  # (b, H, W) float32, the plain maps
    presence: np.ndarray | None = None  # (b,), two-head members
    probs_tta: np.ndarray | None = None  # the flip-averaged maps
    presence_tta: np.ndarray | None = None
    images: np.ndarray | None = None  # (b, H, W) the raw images (the CRF step)

    def inputs(self, pipeline: PostProcess) -> tuple[np.ndarray, np.ndarray | None]:
        """The maps and presences ``pipeline`` reads (flip-averaged ones when it has ``tta``)."""
        if pipeline.tta:
            if self.probs_tta is None:
                raise ValueError("a tta pipeline needs flip-averaged OOF maps (prob_tta): set predict.tta")
            return self.probs_tta, self.presence_tta
        return self.probs, self.presence


#: What a pass must load: "plain" and/or "tta" maps, and "images" for the CRF.
Needs = frozenset[str]


def variants(current: PostProcess, candidate: str, options: dict) -> list[PostProcess]:
    """The pipelines that add ``candidate`` to ``current`` (one per option value)."""
    if candidate == "tta":
        return [] if current.tta else [current.with_changes(tta=True)]
    if candidate == "crf":
        return [] if current.crf else [current.with_changes(crf=True)]
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
    """Per-image Kaggle Dice of post-processing pipelines, computed in streaming passes.

    ``batches(needs)`` yields :class:`Batch` es covering every image once, loading only
    what ``needs`` names. The pixel counts (intersection, predicted and true area) of
    every scored pipeline are kept too, for the other metrics of the chosen one.
    """

    def __init__(self, batches: Callable[[Needs], Iterator[Batch]], n_images: int, crf_settings: dict | None = None):
        self._batches = batches
        self.n_images = n_images
        self.crf_settings = crf_settings
        self.scores: dict[PostProcess, np.ndarray] = {}
        self.counts: dict[PostProcess, np.ndarray] = {}  # (n, 3): intersection, predicted area, true area
        self.passes = 0

    def ensure(self, pipelines: Iterable[PostProcess]) -> None:
        missing = [p for p in dict.fromkeys(pipelines) if p not in self.scores]
        if not missing:
            return
        needs = frozenset({"tta" if p.tta else "plain" for p in missing} | ({"images"} if any(
            p.crf for p in missing) else set()))
        out = {p: np.full((self.n_images, 3), -1, dtype=np.int64) for p in missing}
        for batch in self._batches(needs):
            for i, row in enumerate(batch.rows):
                truth = batch.truths[i]
                true_area = int(np.count_nonzero(truth))
                image = None if batch.images is None else batch.images[i]
                memo = {}  # this image's shared steps (thresholds, components) across the pipelines
                for pipeline in missing:
                    probs, presence = batch.inputs(pipeline)
                    gate = None if presence is None else float(presence[i])
                    mask = pipeline.apply(probs[i], gate, image, self.crf_settings, memo)
                    pred_area = int(np.count_nonzero(mask))
                    inter = int(np.count_nonzero(mask & truth)) if pred_area and true_area else 0
                    out[pipeline][row] = inter, pred_area, true_area
        for pipeline, counts in out.items():
            if (counts < 0).any():
                raise ValueError("the OOF batches did not cover every image")
            self.counts[pipeline] = counts
            self.scores[pipeline] = dice_from_counts(counts[:, 0], counts[:, 1], counts[:, 2])
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
            keep, ci = keep_candidate(cache.scores[best][s.rows], base, subjects[s.rows], n_boot=n_boot, seed=seed,
                                      level=level, min_gain=float(options.get("min_gain", 0.0)))
            s.decisions.append(decision(candidate, _change(s.current, best), base.mean(),
                                        cache.scores[best][s.rows].mean(), keep, ci))
            if keep:
                s.current = best
    return selections


def _change(before: PostProcess, after: PostProcess) -> dict:
    a, b = before.to_dict(), after.to_dict()
    return {k: v for k, v in b.items() if a[k] != v}
