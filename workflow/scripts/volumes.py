"""Slice decisions put back into volumes: the OOF per-volume scores of a model or ensemble
(rule volume_scores), an ensemble's test label volumes (rule label_volumes), the table of them all
(rule volume_table)."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.volumes import label_volumes_stage, volume_scores_stage, volume_table_stage
from plexus.tasks import load_task

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    task = load_task(p.task) if "task" in p.keys() else None
    if snakemake.rule == "volume_scores":
        members = {m: list(i[f"oof_{m}"]) for m in p.members}
        volume_scores_stage(task, p.settings, members, decision_json=i.decision, train_csv=i.train,
                            folds_csv=i.folds, index_json=i.index, scores_csv=o.scores, summary_json=o.summary,
                            n_boot=p.boot["bootstrap_samples"], seed=p.boot["seed"], name=snakemake.wildcards.name,
                            min_volumes=p.min_volumes)
    elif snakemake.rule == "volume_table":
        volume_table_stage(p.names, list(i.summaries), o.csv, o.md)
    else:
        members = {m: [path] for m, path in zip(p.members, i.means)}
        label_volumes_stage(task, p.settings, members, decision_json=i.decision, test_csv=i.test,
                            index_json=i.index, out_dir=o[0], volume_summary_json=i.volume_summary)
