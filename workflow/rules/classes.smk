# The generic workflow per class (data.format folders or sheet): per-class minimum areas tuned
# on the OOF predictions, label maps, tables, robustness scores and figures
# (plexus.stages.classes). Training and prediction are the shared rules of train.smk and
# predict.smk; the data rules are in sheet.smk.


rule tune_classes:
    input:
        unpack(member_oofs),
        folds="results/splits/folds.csv",
        train="results/manifest/train.csv",
    output:
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
        per_image="results/tuning/{name}/per_image.csv",
    log:
        "results/logs/tune/{name}.log",
    benchmark:
        "results/benchmarks/tune/{name}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        members=tune_members,
        classes=CLASSES,
        ignore=IGNORE,
        grid=grid_values(config["tuning"]["min_areas"], integer=True),
        code=script_code("tune_classes"),
    script:
        "../scripts/tune_classes.py"


rule labelmaps:
    input:
        means=member_test_means,
        test="results/manifest/test.csv",
        best="results/tuning/{ensemble}/best.json",
    output:
        maps=directory("results/labelmaps/{ensemble}"),
        table="results/submission/{ensemble}.csv",
    log:
        "results/logs/labelmaps/{ensemble}.log",
    benchmark:
        "results/benchmarks/labelmaps/{ensemble}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        classes=CLASSES,
        code=script_code("labelmaps"),
    script:
        "../scripts/labelmaps.py"


rule class_table:
    input:
        per_image=expand("results/tuning/{name}/per_image.csv", name=tuning_names()),
        train="results/manifest/train.csv",
    output:
        csv="results/tables/classes.csv",
        md="results/tables/classes.md",
    log:
        "results/logs/tables/classes.log",
    benchmark:
        "results/benchmarks/tables/classes.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=tuning_names(),
        classes=CLASSES,
        bootstrap=config["summary"],
        code=script_code("class_table"),
    script:
        "../scripts/class_table.py"


if NOISE["enabled"]:

    rule noise_scores_classes:
        input:
            unpack(noise_prediction_files),
            best=f"results/tuning/{ROBUSTNESS.get('model')}/best.json",
            folds="results/splits/folds.csv",
            train="results/manifest/train.csv",
        output:
            "results/robustness/noise/scores.csv",
        log:
            "results/logs/robustness/noise_scores.log",
        benchmark:
            "results/benchmarks/robustness/noise_scores.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            entries=noise_entries(),
            classes=CLASSES,
            ignore=IGNORE,
            code=script_code("noise_scores_classes"),
        script:
            "../scripts/noise_scores_classes.py"


if TRAIN_SIZE["enabled"]:

    rule train_size_scores_classes:
        input:
            unpack(train_size_oof_files),
            unpack(train_size_infos),
            best=f"results/tuning/{ROBUSTNESS.get('model')}/best.json",
            folds="results/splits/folds.csv",
            train="results/manifest/train.csv",
        output:
            "results/robustness/train_size/scores.csv",
        log:
            "results/logs/robustness/train_size_scores.log",
        benchmark:
            "results/benchmarks/robustness/train_size_scores.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            entries=train_size_entries(),
            classes=CLASSES,
            ignore=IGNORE,
            code=script_code("train_size_scores_classes"),
        script:
            "../scripts/train_size_scores_classes.py"


if MISSING["enabled"]:

    rule missing_channel_scores:
        input:
            models=expand(
                "results/models/{model}/fold{fold}/model.pt",
                model=ROBUSTNESS.get("model"),
                fold=FOLDS,
            ),
            data=robust_train_npz,
            best=f"results/tuning/{ROBUSTNESS.get('model')}/best.json",
            folds="results/splits/folds.csv",
            train="results/manifest/train.csv",
            summary="results/manifest/summary.json",
        output:
            "results/robustness/missing_channel/scores.csv",
        log:
            "results/logs/robustness/missing_channel_scores.log",
        benchmark:
            "results/benchmarks/robustness/missing_channel_scores.tsv"
        conda:
            "../../envs/plexus.yaml"
        threads: 1
        resources:
            gpu=1,
            runtime=predict_runtime,
            mem_mb=gpu_mem_mb,
            cpus_per_task=cpus_per_task,
        params:
            classes=CLASSES,
            ignore=IGNORE,
            batch_size=config["predict"]["batch_size"],
            code=script_code("missing_channel_scores"),
        script:
            "../scripts/missing_channel_scores.py"


rule figure_classes:
    input:
        unpack(class_figure_inputs),
    output:
        **class_figure_outputs(),
    log:
        "results/logs/figures/classes.log",
    benchmark:
        "results/benchmarks/figures/classes.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        style=config["figures"],
        code=script_code("figure_classes"),
    script:
        "../scripts/figure_classes.py"
