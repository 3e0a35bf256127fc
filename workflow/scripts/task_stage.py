"""One stage of the study's task (params.task): tune, postprocess, submission, tables, robustness
scores or figures. The rule names the stage; the task module (plexus.tasks) does the work."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.tasks import load_task

with logged(snakemake.log[0]):
    # a rule that serves several stages (figure_robustness) names the one its job runs
    stage = getattr(snakemake.params, "stage", snakemake.rule)
    load_task(snakemake.params.task).run(stage, snakemake)
