# The results table of every model and ensemble with subject-bootstrap CIs, and the comparison
# and pairwise tables (Table I, paired tests) with their figures.


rule summary_table:
    input:
        best=expand("results/tuning/{name}/best.json", name=tuning_names()),
        per_image=expand("results/tuning/{name}/per_image.csv", name=tuning_names()),
        postprocess=expand("results/postprocess/{name}.json", name=tuning_names()),
        # the training-health column: every fold's collapse-guard record
        train_info=expand(
            "results/models/{model}/fold{fold}/train_info.json",
            model=MODELS,
            fold=FOLDS,
        ),
        train="results/manifest/train.csv",
    output:
        csv=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Results",
        ),
        md="results/tables/summary.md",
    log:
        "results/logs/figures/summary_table.log",
    benchmark:
        "results/benchmarks/figures/summary_table.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        names=tuning_names(),
        kinds=tuning_kinds(),
        members=[members_of(name) for name in tuning_names()],
        models=list(MODELS),
        settings=task_settings("summary_table"),
        code=task_code("summary_table"),
    script:
        "../scripts/task_stage.py"


rule comparison:
    input:
        per_image=expand(
            "results/postprocess/{name}_per_image.csv", name=tuning_names()
        ),
        tuned_per_image=expand(
            "results/tuning/{name}/per_image.csv", name=tuning_names()
        ),
        train_info=expand("results/models/{model}/fold0/train_info.json", model=MODELS),
        train="results/manifest/train.csv",
    output:
        csv=report(
            "results/tables/comparison.csv",
            caption="../report/comparison_table.rst",
            category="Results",
        ),
        md="results/tables/comparison.md",
        pairwise_csv=report(
            "results/tables/pairwise.csv",
            caption="../report/pairwise_table.rst",
            category="Results",
        ),
        pairwise_md="results/tables/pairwise.md",
        png=report(
            "results/figures/comparison/models.png",
            caption="../report/comparison.rst",
            category="Results",
        ),
        pdf="results/figures/comparison/models.pdf",
        pairwise_png=report(
            "results/figures/comparison/pairwise.png",
            caption="../report/pairwise.rst",
            category="Results",
        ),
        pairwise_pdf="results/figures/comparison/pairwise.pdf",
    log:
        "results/logs/figures/comparison.log",
    benchmark:
        "results/benchmarks/figures/comparison.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        names=tuning_names(),
        kinds=tuning_kinds(),
        members=[members_of(name) for name in tuning_names()],
        models=list(MODELS),
        style=config["figures"],
        settings=task_settings("comparison"),
        code=task_code("comparison"),
    script:
        "../scripts/task_stage.py"
