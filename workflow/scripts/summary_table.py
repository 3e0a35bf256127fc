"""The results table (CSV and Markdown) with subject-level bootstrap CIs."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.tables import summary_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    infos = list(snakemake.input.train_info)  # model-major: every fold of each model in p.models
    per_model = len(infos) // len(p.models)
    train_infos = {m: infos[i * per_model:(i + 1) * per_model] for i, m in enumerate(p.models)}
    summary_stage(p.names, p.kinds, p.members, list(snakemake.input.best), list(snakemake.input.per_image),
                  snakemake.output.csv, snakemake.output.md, n_boot=p.n_boot, seed=p.seed,
                  postprocess_jsons=list(snakemake.input.postprocess), train_infos=train_infos)
