"""What a task supplies to the workflow's stages, and the parts every task shares.

A stage rule calls ``load_task(name).run(stage, job)``; ``job`` is the Snakemake job (its
``input``, ``output``, ``params``, ``wildcards``, ``threads``), or any object with the same
attributes (the tests build one with :class:`types.SimpleNamespace`). The rule's files are
the same for every task; what a task reads beyond them it names in :attr:`Task.inputs`, and
the settings of each stage it takes from the config in :meth:`Task.settings`, so that a
job's params hold only what its task reads (changing another task's settings reruns nothing).

Keep this module and the task modules' top-level imports light (numpy, pandas, the file
contracts): the science is imported inside each stage method, so a figure job never imports
torch and each (task, stage) job's code version (:func:`plexus.codehash.task_code_version`)
covers exactly the modules that stage can run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the stages a task implements, one workflow rule each (``workflow/rules/*.smk``)
STAGES = ("tune", "postprocess", "submission", "summary_table", "comparison", "noise_scores",
          "train_size_scores", "missing_channel_scores", "figure_tuning", "figure_qualitative", "figure_noise",
          "figure_train_size", "figure_missing_channel")
#: the robustness studies (``robustness.<study>``): scores by the task, a figure by the task
STUDIES = ("noise", "train_size", "missing_channel")


@dataclass(frozen=True)
class Figure:
    """One figure a stage draws (PNG and PDF): the rule's output key, its file stem under
    ``results/figures`` (with the rule's wildcards, e.g. ``tuning/{name}_heatmap``) and its
    report caption (a file of ``workflow/report``) and category."""

    key: str
    stem: str
    caption: str
    category: str


@dataclass
class Task:
    """A kind of segmentation study; subclasses implement the stage methods.

    ``formats``: the data formats (importers) whose manifest this task can read.
    ``inputs``: per stage, the files it reads beyond the rule's own (name -> path).
    ``figures``: per figure stage, the figures it draws.
    ``studies``: the robustness studies it scores.
    ``tta``: whether its decisions read the flip-averaged predictions (``predict.tta``).
    ``score``: the name of its per-image score (tables, figures).
    ``output``: what its networks output, which the training stage builds the head for:
    ``sigmoid`` (one foreground map, a presence head allowed) or ``softmax`` (one map per class
    of the arrays; a model's ``region_training: regions`` makes it one sigmoid per region).
    """

    name: str
    formats: tuple[str, ...]
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, tuple[Figure, ...]] = field(default_factory=dict)
    studies: tuple[str, ...] = STUDIES
    tta: bool = False
    score: str = "score"
    output: str = "softmax"

    def run(self, stage: str, job) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
        for study in set(STUDIES) - set(self.studies):
            if stage in (f"{study}_scores", f"figure_{study}"):
                self._missing(stage)
        getattr(self, stage)(job)

    def settings(self, stage: str, config: dict) -> dict:
        """The config's settings that ``stage`` of this task reads (the rule's ``settings`` param)."""
        return {}

    def config_errors(self, config: dict) -> list[str]:
        """Problems of ``config`` for this task, one line each naming its key."""
        errors = []
        if config["data"]["format"] not in self.formats:
            errors.append(f"task: {self.name!r} does not read data.format {config['data']['format']!r} "
                          f"(it reads {', '.join(self.formats)})")
        for study in STUDIES:
            if config["robustness"][study]["enabled"] and study not in self.studies:
                errors.append(f"robustness.{study}.enabled: task {self.name!r} has no {study} study "
                              f"(it has {', '.join(self.studies) or 'none'})")
        return errors

    def figure_files(self, stage: str) -> dict[str, tuple[str, Figure]]:
        """Output key -> (path, figure) of a figure stage: ``{key}`` PNG and ``{key}_pdf``."""
        files = {}
        for figure in self.figures.get(stage, ()):
            files[figure.key] = (f"results/figures/{figure.stem}.png", figure)
            files[f"{figure.key}_pdf"] = (f"results/figures/{figure.stem}.pdf", figure)
        return files

    # -- stages: each reads job.input / job.output / job.params (see the rule files)

    def _missing(self, stage: str):
        raise NotImplementedError(f"task {self.name!r} has no {stage} stage")

    def units(self, settings: dict) -> tuple[list[str], np.ndarray]:
        """The units a volume is scored on (:mod:`plexus.stages.volumes`): their names and the ``(U, K)``
        bool matrix of the learnt classes each unites (a binary foreground, each class, each region)."""
        self._missing("volume scores")

    def decided_unit_masks(self, settings: dict, members: dict[str, list[str]], manifest, image_ids, decision: dict):
        """Per image of ``image_ids``, the ``(U, H, W)`` bool masks of :meth:`units` at ``decision`` (a
        ``results/postprocess/{name}.json``), at each image's own size (``manifest``), from the
        ``members``' prediction files (``{member: files}``: OOF fold files or test means)."""
        self._missing("volume scores")

    def unit_values(self, settings: dict) -> list[int]:
        """The value each unit is written with in a label volume, painted in :meth:`units` order (a
        later unit over an earlier one): the class's mask value; the 1-based region (regions)."""
        self._missing("volume scores")

    def tune(self, job) -> None:
        """The task's tuning on the plain OOF maps (:meth:`tune_into` the rule's outputs)."""
        self.tune_into(job, "prob", {"grid": job.output.grid, "best": job.output.best,
                                     "per_image": job.output.per_image})

    def tune_into(self, job, key: str, outputs: dict) -> None:
        """Tune on the members' OOF arrays ``key`` (``prob``, ``prob_tta``); write ``outputs`` grid,
        best and per_image."""
        self._missing("tune")

    def postprocess(self, job) -> None:
        """The tuned decision, then flip TTA as a candidate under the bootstrap rule (``tta`` in
        ``postprocess.candidates``): the whole tuning is repeated on the flip-averaged maps and kept
        when its paired per-image gain's subject-bootstrap CI lies above 0. Cross-fitted as a whole:
        each fold gets the TTA decision made on the other folds, and that choice's tuned-elsewhere score."""
        import tempfile

        from plexus.evaluation.crossfit import decision, keep_candidate

        settings = job.params.settings
        min_gain = float(settings.get("min_gain", 0.0))
        plain, best = self.image_level(job.input.per_image), _read_json(job.input.best)
        per_image, decisions = plain.assign(postprocessed=plain["tuned"]), []
        pipeline = {**tuned_setting(best), "tta": False}
        fold_tta = {int(k): False for k in np.unique(plain["fold"])}  # each fold's choice, made on the others
        if self.tta and "tta" in settings["candidates"]:
            with tempfile.TemporaryDirectory() as tmp:
                tta, tta_best = self.retune(job, "prob_tta", tmp)
            subjects, folds = plain["subject"].to_numpy(), plain["fold"].to_numpy()
            boot = {"n_boot": settings["n_boot"], "seed": settings["seed"], "min_gain": min_gain}
            kept, ci = keep_candidate(tta["tuned"], plain["tuned"], subjects, **boot)
            decisions.append(decision("tta", {"tta": True}, plain["tuned"].mean(), tta["tuned"].mean(), kept, ci))
            crossfit = plain["cross_fitted"].to_numpy(np.float64).copy()
            for fold in np.unique(folds):
                inside = folds == fold
                if keep_candidate(tta["tuned"][~inside], plain["tuned"][~inside], subjects[~inside], **boot)[0]:
                    crossfit[inside] = tta["cross_fitted"].to_numpy(np.float64)[inside]
                    fold_tta[int(fold)] = True
            chosen = tta if kept else plain
            per_image = chosen.assign(untuned=plain["untuned"], postprocessed=chosen["tuned"], tuned=plain["tuned"],
                                      cross_fitted=crossfit)
            if kept:
                pipeline = {**tuned_setting(tta_best), "tta": True}
        per_image, pipeline = self.map_candidates(job, per_image, pipeline, decisions, fold_tta)
        own = {}
        if "crf" in pipeline:  # the crf map candidate was tried: its settings when kept, as binary records them
            from plexus.postprocess.candidates import CRF_DEFAULTS

            own["crf_settings"] = {**CRF_DEFAULTS, **(settings.get("crf") or {})} if pipeline["crf"] else None
        write_decision(job, per_image, pipeline, self.score, n_boot=settings["n_boot"], seed=settings["seed"],
                       decisions=decisions, min_gain=min_gain, task=self.name, own=own)

    def map_candidates(self, job, per_image, pipeline: dict, decisions: list, fold_tta: dict[int, bool]):
        """The candidates that change the decided maps (a task's own), tried after flip TTA under the
        same rule and cross-fitted the same way: returns ``(per_image, pipeline)`` with their kept
        steps, and appends a decision record per candidate to ``decisions``. ``fold_tta``: each
        fold's TTA choice, made on the other folds. Default: none."""
        return per_image, pipeline

    def image_level(self, per_image_csv):
        """The tuning's per-image table as :data:`DECISION_COLUMNS` of the task's score (default: the
        mean over the units, classes or regions, of a per-image-and-unit Dice table)."""
        return mean_over_units(per_image_csv)

    def retune(self, job, key: str, folder):
        """The task's tuning repeated on the OOF arrays ``key`` (e.g. ``prob_tta``), its files in
        ``folder``: ``(image_level frame, best dict)``."""
        from pathlib import Path

        outputs = {name: Path(folder, f"{name}.{ext}") for name, ext in TUNING_FILES}
        self.tune_into(job, key, outputs)
        return self.image_level(outputs["per_image"]), _read_json(outputs["best"])

    def submission(self, job) -> None:
        self._missing("submission")

    def summary_table(self, job) -> None:
        self._missing("summary_table")

    def comparison(self, job) -> None:
        self._missing("comparison")

    def noise_scores(self, job) -> None:
        self._missing("noise_scores")

    def train_size_scores(self, job) -> None:
        self._missing("train_size_scores")

    def missing_channel_scores(self, job) -> None:
        self._missing("missing_channel_scores")

    def figure_tuning(self, job) -> None:
        self._missing("figure_tuning")

    def figure_qualitative(self, job) -> None:
        self._missing("figure_qualitative")

    def figure_study(self, study: str, job) -> None:
        self._missing(f"figure_{study}")

    def figure_noise(self, job) -> None:
        self.figure_study("noise", job)

    def figure_train_size(self, job) -> None:
        self.figure_study("train_size", job)

    def figure_missing_channel(self, job) -> None:
        self.figure_study("missing_channel", job)


#: the map candidates of the ``classes`` and ``regions`` tasks (``postprocess.candidates``), each with
#: its key in a decision's pipeline and that key's value when it is not kept (the binary task's names,
#: :class:`plexus.postprocess.candidates.PostProcess`): the dense-CRF marginals of the map and its image in
#: place of the map (classes: one K-label CRF of the softmax, then the argmax; regions: a two-label CRF
#: of each region's map, as binary's, before its cutoff), each unit's (class's, region's) Otsu threshold
#: or hysteresis seed level in place of its plain cut, its largest component, its filled holes
UNIT_STEPS = {"crf": ("crf", False), "otsu": ("otsu", False), "hysteresis": ("hysteresis_high", None),
              "largest_component": ("largest_only", False), "fill_holes": ("fill_holes", False)}
#: the candidates that replace a unit's plain cut (a tuned cutoff, the argmax): one of them at most
THRESHOLD_STEPS = ("otsu", "hysteresis")


def map_step_candidates(candidates) -> list[str]:
    """The map candidates (:data:`UNIT_STEPS`) of ``candidates`` (``postprocess.candidates``) in the
    order they are tried: ``crf`` first, as in the binary task's
    :data:`plexus.postprocess.selection.CANDIDATES` (it changes the map that the other steps cut), the
    others in the given order."""
    return sorted((c for c in candidates if c in UNIT_STEPS), key=lambda c: c != "crf")


def step_variants(candidate: str, steps: dict, levels=()) -> list[dict]:
    """The pipeline changes that add ``candidate`` to the kept ``steps`` (pipeline key -> value), as
    the binary task's :func:`plexus.postprocess.selection.variants` makes them: hysteresis one per
    seed level of ``levels`` (the caller's, those that change something at its setting), the others
    one; none when the candidate is kept already, and none for otsu or hysteresis once the other is
    (both replace the plain cut)."""
    key, off = UNIT_STEPS[candidate]
    if steps.get(key, off) != off:
        return []
    if candidate in THRESHOLD_STEPS:
        if any(steps.get(UNIT_STEPS[c][0], UNIT_STEPS[c][1]) != UNIT_STEPS[c][1] for c in THRESHOLD_STEPS):
            return []
        if candidate == "hysteresis":
            return [{key: float(level)} for level in levels]
    return [{key: True}]


def choose_map_steps(per_image, pipeline: dict, decisions: list, fold_tta: dict[int, bool], *, candidates,
                     variants, scores, final_setting, fold_setting, subjects, fold_of, boot: dict):
    """The map candidates of a task (:data:`UNIT_STEPS`: changes of the map each unit's decided mask is
    cut from, or of that mask; in :func:`map_step_candidates` order), tried in turn after flip TTA
    under the one keep rule (:func:`plexus.evaluation.crossfit.keep_candidate`), and cross-fitted:
    each fold starts from the setting and TTA choice made on the other folds and keeps the steps those
    folds keep.

    ``variants(candidate, setting, steps)``: the pipeline changes that add ``candidate`` to the kept
    ``steps`` (pipeline key -> value) at a tuned ``setting`` (:func:`step_variants`), ``[]`` when none
    applies (then the candidate is not tried and gets no record). A candidate of several variants
    (hysteresis's seed levels) takes the one of the best mean score on the images it decides on (all
    of them for the decision, the other folds for a fold's; the first on ties), as the binary task's
    selection does, and that one faces the rule. ``scores(tta, setting, steps, rows)``: per image
    (NaN outside ``rows``) the task's score at a tuned ``setting`` with ``steps`` applied;
    ``final_setting``: the decision's setting; ``fold_setting(tta, fold)``: the setting tuned on the
    other folds. ``per_image`` rows are the folds' images in order (``subjects``, ``fold_of``).
    Returns ``(per_image, pipeline)``; appends a decision record per tried candidate to ``decisions``.
    """
    from plexus.evaluation.crossfit import decision, keep_candidate

    n = len(per_image)
    memo: dict[tuple, np.ndarray] = {}

    def scored(tta: bool, setting, steps: dict, rows: np.ndarray) -> np.ndarray:
        # each image's score of a (tta, setting, steps) once, whichever selections read it
        out = memo.setdefault((bool(tta), repr(setting), repr(sorted(steps.items()))), np.full(n, np.nan))
        todo = rows[np.isnan(out[rows])]
        if len(todo):
            out[todo] = scores(tta, setting, steps, todo)[todo]
        return out

    def select(tta: bool, setting, rows: np.ndarray, records: list | None) -> tuple[dict, np.ndarray]:
        steps, current = {}, scored(tta, setting, {}, rows)
        for candidate in candidates:
            tried = variants(candidate, setting, steps)
            if not tried:
                continue
            with_steps = [scored(tta, setting, {**steps, **change}, rows) for change in tried]
            best = max(range(len(tried)), key=lambda k: with_steps[k][rows].mean())
            kept, ci = keep_candidate(with_steps[best][rows], current[rows], subjects[rows], **boot)
            if records is not None:
                records.append(decision(candidate, tried[best], current[rows].mean(), with_steps[best][rows].mean(),
                                        kept, ci))
            if kept:
                steps, current = {**steps, **tried[best]}, with_steps[best]
        return steps, current

    every = np.arange(n)
    tta = bool(pipeline.get("tta"))
    plain = scored(tta, final_setting, {}, every)
    if not np.allclose(plain, per_image["postprocessed"].to_numpy(np.float64), rtol=0, atol=1e-9):
        # the task's scorer must reproduce its decision before it judges a step on top of it
        raise ValueError("the map candidates' scores of the decided setting differ from the tuning's per-image "
                         "scores: a task's scores() and tune disagree")
    steps, current = select(tta, final_setting, every, decisions)
    crossfit = per_image["cross_fitted"].to_numpy(np.float64).copy()
    for fold, choice in fold_tta.items():
        inside, others = fold_of == fold, np.flatnonzero(fold_of != fold)
        setting = fold_setting(choice, fold)
        fold_steps, _ = select(choice, setting, others, None)
        if fold_steps:
            crossfit[inside] = scored(choice, setting, fold_steps, np.flatnonzero(inside))[inside]
    pipeline = {**pipeline, **{UNIT_STEPS[c][0]: UNIT_STEPS[c][1] for c in candidates}, **steps}
    if steps:  # else the tuned column as it was (its mean over the units was summed in another order)
        per_image = per_image.assign(postprocessed=current.copy())
    return per_image.assign(cross_fitted=crossfit), pipeline


def as_members(name: str, oofs) -> dict[str, list]:
    """A panel's OOF files as ``{member: fold files}``: ``oofs`` is that mapping (an ensemble's
    members) or one model's fold files, named ``name``."""
    return {m: list(paths) for m, paths in oofs.items()} if isinstance(oofs, dict) else {name: list(oofs)}


def member_oofs(job) -> dict[str, list[str]]:
    """Each member's OOF files by fold, from the rule's ``oof_{member}`` inputs."""
    return {member: list(job.input[f"oof_{member}"]) for member in job.params.members}


def figure_paths(job, key: str) -> list[str]:
    """The PNG and PDF outputs of figure ``key``."""
    return [job.output[key], job.output[f"{key}_pdf"]]


def noise_files(job) -> dict[tuple[str, float], str]:
    """(condition, sigma) -> the noise study's OOF predictions."""
    return {(condition, float(sigma)): job.input[key] for key, condition, sigma in job.params.entries}


def train_size_files(job) -> tuple[dict[tuple[float, int], list], list]:
    """(size, seed) -> the subset run's OOF files by fold, and the full run's."""
    runs = {(float(size), int(seed)): list(job.input[key]) for key, size, seed in job.params.entries}
    return runs, list(job.input.full)


def train_infos_by_model(job) -> dict[str, list[str]]:
    """Each model's folds' ``train_info.json`` (the rule lists them model-major)."""
    infos, models = list(job.input.train_info), list(job.params.models)
    per_model = len(infos) // len(models)
    return {m: infos[k * per_model:(k + 1) * per_model] for k, m in enumerate(models)}


#: a tuning's files (``results/tuning/{name}/``): output key and suffix
TUNING_FILES = (("grid", "csv"), ("best", "json"), ("per_image", "csv"))
#: what every task's tuning record (``results/tuning/{name}/best.json``) holds: the task, the members whose
#: averaged OOF maps were tuned, the score's name, its per-image mean untuned (the plain output), tuned
#: and cross-fitted (each fold at the setting tuned on the others), and the images; every other key is
#: the task's tuned setting (:func:`tuned_setting`)
TUNING_KEYS = ("task", "members", "score_name", "untuned_score", "score", "cross_fitted_score", "n_images")
#: what every task's decision record (``results/postprocess/{name}.json``) holds: the tuning record's
#: first keys, the decided ``pipeline`` (the tuned setting and the kept candidates), the per-image means
#: untuned, tuned, post-processed (``score``) and cross-fitted with its subject-bootstrap CI, the keep
#: rule and one record per candidate tried; a task may add keys of its own
DECISION_KEYS = ("task", "members", "score_name", "pipeline", "untuned_score", "tuned_score", "score",
                 "cross_fitted_score", "cross_fitted_ci", "rule", "decisions")


def _record(kind: str, keys: tuple, common: dict, own: dict) -> dict:
    missing = [k for k in keys if k not in common]
    unknown = [k for k in common if k not in keys]
    clashes = [k for k in own if k in keys]
    if missing or unknown or clashes:
        raise ValueError(f"a {kind} record needs exactly the keys {', '.join(keys)} besides its task's own"
                         + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; the task's keys repeat {', '.join(clashes)}" if clashes else ""))
    return {**{k: common[k] for k in keys}, **own}


def tuning_record(common: dict, setting: dict) -> dict:
    """The tuning record of every task: :data:`TUNING_KEYS` (``common``) and the task's tuned ``setting``."""
    return _record("tuning", TUNING_KEYS, common, setting)


def decision_record(common: dict, own: dict | None = None) -> dict:
    """The decision record of every task: :data:`DECISION_KEYS` (``common``) and the task's ``own`` keys."""
    return _record("decision", DECISION_KEYS, common, own or {})


def tuned_setting(best: dict) -> dict:
    """The task's tuned setting of a tuning record: every key but :data:`TUNING_KEYS`."""
    return {key: value for key, value in best.items() if key not in TUNING_KEYS}


def mean_over_units(per_image_csv):
    """The per-image scores of a table with one row per image and unit (class or region): the mean
    over the units of ``dice_untuned``, ``dice``, ``dice_cross_fitted`` and the other metrics."""
    from plexus.io.contracts import read_per_image

    frame = read_per_image(per_image_csv)
    grouped = frame.groupby(["image_id", "subject", "fold"], sort=False)
    out = grouped[["dice_untuned", "dice", "dice_cross_fitted", "iou", "sensitivity", "precision"]].mean()
    out = out.rename(columns={"dice_untuned": "untuned", "dice": "tuned", "dice_cross_fitted": "cross_fitted"})
    return out.reset_index().assign(postprocessed=lambda f: f["tuned"])


#: the per-image columns of ``results/postprocess/{name}_per_image.csv`` that every task writes
#: (the comparison and pairwise tables read them): the plain output, the tuned decision, the
#: decision after the post-processing candidates, and each fold at the decision of the other folds
DECISION_COLUMNS = ("untuned", "tuned", "postprocessed", "cross_fitted")


def write_decision(job, per_image, best: dict, score: str, *, n_boot: int, seed: int, decisions=(),
                   min_gain: float = 0.0, task: str, own: dict | None = None) -> dict:
    """``results/postprocess/{name}.json``, its decisions table and its per-image table, for a task
    whose decision is its tuned setting (``best``) and ``decisions`` its kept or refused candidates.

    ``per_image``: image_id, subject, fold and :data:`DECISION_COLUMNS` (of the task's per-image
    ``score``), and any metric columns. ``min_gain``: the keep rule's (``rule``). ``own``: the task's
    own keys of the record (:func:`decision_record`; ``crf_settings`` when the crf candidate was tried).
    """
    from plexus.evaluation.bootstrap import bootstrap_ci
    from plexus.evaluation.crossfit import decisions_table, keep_rule
    from plexus.io import atomic

    ci = bootstrap_ci(per_image, value="cross_fitted", n_boot=n_boot, seed=seed)
    result = decision_record({
        "task": task,
        "members": list(job.params.members),
        "score_name": score,
        "pipeline": tuned_setting(best),
        "untuned_score": float(per_image["untuned"].mean()),
        "tuned_score": float(per_image["tuned"].mean()),
        "score": float(per_image["postprocessed"].mean()),
        "cross_fitted_score": ci["mean"], "cross_fitted_ci": [ci["low"], ci["high"]],
        "rule": keep_rule(min_gain),
        "decisions": list(decisions),
    }, own)
    atomic.write_json(job.output.json, result)
    atomic.write_csv(job.output.decisions, decisions_table(decisions))
    atomic.write_csv(job.output.per_image, per_image)
    print(f"{score}: untuned {result['untuned_score']:.4f}, tuned {result['tuned_score']:.4f}, "
          f"post-processed {result['score']:.4f}; cross-fitted {ci['mean']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]")
    return result


def write_submission_summary(submission_csv, summary_json, decision: dict) -> dict:
    """``results/submission/{ensemble}.json``: the submission's rows and the decision it applied."""
    import pandas as pd

    from plexus.io import atomic

    frame = pd.read_csv(submission_csv, dtype=str, keep_default_na=False)
    summary = {"rows": len(frame), "images": int(frame.iloc[:, 0].nunique()) if len(frame) else 0,
               "pipeline": decision.get("pipeline"), "members": decision.get("members")}
    atomic.write_json(summary_json, summary)
    return summary


def _read_json(path) -> dict:
    from plexus.io.contracts import read_json

    return read_json(path)
