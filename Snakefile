# plexus: a raw 2-D dataset -> cross-validated, tuned, ensembled submission and figures.
# A table of contents: one rule file per stage, each stage calling the study's task
# (plexus.tasks); the logic lives in workflow/rules/common.smk and the plexus package.
from snakemake.utils import min_version

min_version("9.0")


# --configfile replaces the default config instead of being merged into it key by key,
# so `--configfile config/kaggle.yaml` plans exactly the models and studies of that file.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/folds.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/submit.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/volumes.smk"


rule all:
    default_target: True
    input:
        runs.final_targets(config, TASK),


# results/provenance.json: git commit and dirtiness, config hash, versions, devices; then what
# the run found (results/run_summary.md, when this run's targets include it)
onsuccess:
    from plexus.provenance import write

    write("results/provenance.json", workflow.basedir, config, "results")
    if Path("results/run_summary.md").exists():
        print(Path("results/run_summary.md").read_text())
