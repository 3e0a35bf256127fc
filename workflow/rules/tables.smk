# The results table of every model and ensemble with subject-bootstrap CIs, and the comparison
# and pairwise tables (Table I, paired tests) with their figures.


rule summary_table:
    input:
        best=expand("results/tuning/{name}/best.json", name=runs.tuning_names(config)),
        per_image=expand(
            "results/tuning/{name}/per_image.csv", name=runs.tuning_names(config)
        ),
        postprocess=expand(
            "results/postprocess/{name}.json", name=runs.tuning_names(config)
        ),
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
        names=runs.tuning_names(config),
        kinds=runs.tuning_kinds(config),
        members=[runs.members_of(config, name) for name in runs.tuning_names(config)],
        models=list(MODELS),
        settings=task_settings("summary_table"),
        code=task_code("summary_table"),
    script:
        "../scripts/task_stage.py"


rule comparison:
    input:
        per_image=expand(
            "results/postprocess/{name}_per_image.csv", name=runs.tuning_names(config)
        ),
        tuned_per_image=expand(
            "results/tuning/{name}/per_image.csv", name=runs.tuning_names(config)
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
        per_image_png=report(
            "results/figures/comparison/per_image.png",
            caption="../report/per_image.rst",
            category="Results",
        ),
        per_image_pdf="results/figures/comparison/per_image.pdf",
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
        names=runs.tuning_names(config),
        kinds=runs.tuning_kinds(config),
        members=[runs.members_of(config, name) for name in runs.tuning_names(config)],
        models=list(MODELS),
        style=config["figures"],
        settings=task_settings("comparison"),
        code=task_code("comparison"),
    script:
        "../scripts/task_stage.py"


if config["data"]["test_masks"]:

    # a labelled test set (data.test_masks): each model's and ensemble's held-out score (its submitted
    # label maps, or its decision's, against the test masks) beside its cross-fitted estimate; the
    # only job that reads the test masks
    rule heldout:
        input:
            masks=runs.TEST_MASKS,
            test="results/manifest/test.csv",
            labelmaps=expand(
                "results/labelmaps/{ensemble}", ensemble=config["ensembles"]
            ),
            submissions=expand(
                "results/submission/{ensemble}.csv", ensemble=config["ensembles"]
            ),
            means=expand("results/test_probs/{model}/mean.npz", model=MODELS),
            decisions=expand(
                "results/postprocess/{name}.json", name=runs.tuning_names(config)
            ),
            best=expand(
                "results/tuning/{name}/best.json", name=runs.tuning_names(config)
            ),
        output:
            csv=report(
                "results/tables/heldout.csv",
                caption="../report/heldout_table.rst",
                category="Results",
            ),
            md="results/tables/heldout.md",
            per_image="results/tables/heldout_per_image.csv",
            png=report(
                "results/figures/heldout/estimate_vs_heldout.png",
                caption="../report/heldout.rst",
                category="Results",
            ),
            pdf="results/figures/heldout/estimate_vs_heldout.pdf",
        log:
            "results/logs/figures/heldout.log",
        benchmark:
            "results/benchmarks/figures/heldout.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            task=TASK_NAME,
            names=runs.tuning_names(config),
            kinds=runs.tuning_kinds(config),
            members=[
                runs.members_of(config, name) for name in runs.tuning_names(config)
            ],
            style=config["figures"],
            # what the scores read: the classes, the bootstrap, and the submission's settings
            settings={
                "classes": CLASSES,
                "ignore": IGNORE,
                "n_boot": config["summary"]["bootstrap_samples"],
                "seed": config["summary"]["seed"],
                "submission": task_settings("submission"),
            },
            # the models' label maps are made by the task's submission stage
            code=task_code("submission", script="heldout"),
        script:
            "../scripts/heldout.py"


# What the run says at its end (the console, onsuccess, and the report): the best entry, its
# cross-fitted score and the baseline, and a warning for what needs a look.
rule run_summary:
    input:
        decisions=expand(
            "results/postprocess/{name}.json", name=runs.tuning_names(config)
        ),
        summary="results/tables/summary.csv",
        train_info=expand(
            "results/models/{model}/fold{fold}/train_info.json",
            model=MODELS,
            fold=FOLDS,
        ),
    output:
        report(
            "results/run_summary.md",
            caption="../report/run_summary.rst",
            category="Results",
        ),
    log:
        "results/logs/run_summary.log",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=runs.tuning_names(config),
        models=list(MODELS),
        min_gain=config["postprocess"].get("min_gain", 0.0),
        code=script_code("run_summary"),
    script:
        "../scripts/run_summary.py"
