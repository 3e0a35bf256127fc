"""The ``heldout`` stage and ``plexus predict --masks``: a finished study's submission scored on a
labelled test set (the scoring itself, per image and as a table, is :mod:`plexus.evaluation.heldout`).

A model has no submission of its own: its label maps are made from its fold-averaged test
probabilities by the task's own ``submission`` stage with its decision (:func:`decided_labelmaps`),
so this module sits above the tasks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from plexus.evaluation.heldout import DECIMALS, heldout_markdown, heldout_table, read_truth, score_labelmaps


def decided_labelmaps(task_name: str, name: str, means: list, decision_json, best_json, test_csv, out_dir,
                      settings: dict) -> Path:
    """The label maps of ``name``'s decision on its members' fold-averaged test probabilities ``means``,
    written into ``out_dir/labelmaps`` by the task's own ``submission`` stage (what the workflow's
    ``submission`` job of an ensemble runs)."""
    from plexus.tasks import load_task

    out_dir = Path(out_dir)
    job = SimpleNamespace(
        input=SimpleNamespace(means=list(means), decision=str(decision_json), best=str(best_json), test=str(test_csv)),
        output=SimpleNamespace(csv=str(out_dir / "submission.csv"), summary=str(out_dir / "submission.json"),
                               labelmaps=str(out_dir / "labelmaps")),
        params=SimpleNamespace(task=task_name, settings=settings), wildcards=SimpleNamespace(ensemble=name),
        threads=1, rule="submission")
    load_task(task_name).run("submission", job)
    return out_dir / "labelmaps"


def heldout_figure(table: pd.DataFrame, style: dict | None = None):
    """The cross-fitted estimate (x) against the held-out score (y) of every model and ensemble, each
    with both CIs, on the identity line."""
    import matplotlib.pyplot as plt

    from plexus.report.figures import apply_style

    apply_style(style)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    values = table[["heldout_low", "heldout_high", "cross_fitted_low", "cross_fitted_high"]].to_numpy(float)
    low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if len(table) else (0.0, 1.0)
    pad = max(0.02, 0.08 * (high - low))
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=1, ls="--", zorder=0,
            label="held-out = estimate")
    for kind, marker in (("model", "o"), ("ensemble", "D")):
        rows = table[table["kind"] == kind]
        if rows.empty:
            continue
        x, y = rows["cross_fitted"].to_numpy(float), rows["heldout"].to_numpy(float)
        ax.errorbar(x, y, xerr=[x - rows["cross_fitted_low"], rows["cross_fitted_high"] - x],
                    yerr=[y - rows["heldout_low"], rows["heldout_high"] - y], fmt=marker, ms=6, capsize=3,
                    lw=1, label=f"{kind}s")
        for name, xi, yi in zip(rows["name"], x, y):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize="small")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    score = table["score"].iloc[0] if len(table) else "score"
    ax.set_xlabel(f"cross-fitted estimate ({score}, training images)")
    ax.set_ylabel(f"held-out {score} (labelled test set)")
    ax.set_title("Estimate against held-out score (95% CIs)")
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig


def score_study(task_name: str, settings: dict, names: list[str], kinds: list[str], members: list[list[str]],
                decisions: dict[str, str], bests: dict[str, str], labelmaps: dict[str, str], means: dict[str, str],
                truth: pd.DataFrame, test_csv, *, n_boot: int, seed: int,
                submissions: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The held-out table of every name, and each name's per-image scores.

    ``decisions``, ``bests``: each name's ``results/postprocess/{name}.json`` and ``tuning/{name}/best.json``;
    ``labelmaps``: the submitted label maps of the names that have them (ensembles); every other name's
    are made from its members' fold-averaged test probabilities ``means`` (model -> mean.npz) by
    :func:`decided_labelmaps`. ``settings``: ``classes``, ``ignore`` (task classes) and ``submission``
    (the task's settings of that stage). ``submissions``: the submission CSV of each name that has
    label maps (task regions scores its run-length rows)."""
    from plexus.io.contracts import read_json

    per_image, decided = {}, {}
    with tempfile.TemporaryDirectory(prefix="plexus-heldout-") as tmp:
        for name, group in zip(names, members):
            decided[name] = read_json(decisions[name])
            folder, submission = labelmaps.get(name), (submissions or {}).get(name)
            if folder is None:
                folder = decided_labelmaps(task_name, name, [means[m] for m in group], decisions[name], bests[name],
                                           test_csv, Path(tmp, name), settings["submission"])
                submission = Path(tmp, name, "submission.csv")
            per_image[name] = score_labelmaps(task_name, settings, folder, truth, submission)
    table = heldout_table(per_image, decided, dict(zip(names, kinds)), n_boot=n_boot, seed=seed)
    return table, per_image


def write_heldout(table: pd.DataFrame, per_image: dict[str, pd.DataFrame], csv, md, per_image_csv=None) -> None:
    from plexus.io import atomic

    atomic.write_csv(csv, table)
    atomic.write_text(md, heldout_markdown(table))
    if per_image_csv is not None:
        frame = pd.concat([f.assign(name=n) for n, f in per_image.items()], ignore_index=True)
        frame = frame[["name", "image_id", "subject", "score"]].assign(score=lambda f: f["score"].round(DECIMALS))
        atomic.write_csv(per_image_csv, frame)


def heldout_stage(job) -> None:
    """The ``heldout`` rule: ``results/tables/heldout.{csv,md}``, the per-image scores and the figure."""
    from plexus.report.figures import save

    i, o, p = job.input, job.output, job.params
    s = p.settings
    ensembles = [n for n, k in zip(p.names, p.kinds) if k == "ensemble"]
    labelmaps = dict(zip(ensembles, list(i.labelmaps)))
    submissions = dict(zip(ensembles, list(i.submissions)))
    means = {Path(m).parent.name: m for m in i.means}
    names = list(p.names)
    table, per_image = score_study(p.task, s, names, list(p.kinds), [list(m) for m in p.members],
                                   dict(zip(names, i.decisions)), dict(zip(names, i.best)), labelmaps, means,
                                   read_truth(i.masks), i.test, n_boot=s["n_boot"], seed=s["seed"],
                                   submissions=submissions)
    write_heldout(table, per_image, o.csv, o.md, o.per_image)
    save(heldout_figure(table, p.style), [o.png, o.pdf])
    print(heldout_markdown(table))
