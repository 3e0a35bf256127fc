# Nuclei instance segmentation (data.format dsb2018): the DSB2018 folders -> a sample sheet of
# class-index targets and instance label maps (the generic data path of sheet.smk reads it) ->
# post-processing tuned on the OOF predictions by mean AP over IoU thresholds -> test label maps,
# the DSB2018 submission, tables with CIs and figures (plexus.stages.instances). Training and
# prediction are the shared rules of train.smk and predict.smk.


def instance_options():
    """The post-processing grid of the instances section (what tune_instances reads)."""
    keys = ("cutoffs", "otsu", "hysteresis", "watershed", "min_distances", "min_sizes")
    return {key: config["instances"][key] for key in keys}


def nuclei_raw_inputs():
    """The DSB2018 folders the sheet reads: stage1_test only where it exists (or is generated)."""
    folders = {"train": f"{RAW}/stage1_train"}
    if config["data"]["synthetic"]["enabled"] or Path(RAW, "stage1_test").is_dir():
        folders["test"] = f"{RAW}/stage1_test"
    return folders


def instance_figure_inputs(wildcards):
    inputs = {"train": "results/manifest/train.csv"}
    for name in tuning_names():
        for kind, file in (
            ("grid", "grid.csv"),
            ("best", "best.json"),
            ("per_image", "per_image.csv"),
        ):
            inputs[f"{kind}_{name}"] = f"results/tuning/{name}/{file}"
    for model in MODELS:
        inputs[f"oof_{model}"] = expand(
            "results/oof/{model}/fold{fold}.npz", model=model, fold=FOLDS
        )
    return inputs


def instance_figure_outputs():
    outputs = {
        f"{name}_{kind}_{ext}": f"results/figures/instances/{name}_{kind}.{ext}"
        for name in tuning_names()
        for kind in ("tuning", "qualitative")
        for ext in ("png", "pdf")
    }
    outputs.update(
        {
            f"ap_vs_iou_{ext}": f"results/figures/instances/ap_vs_iou.{ext}"
            for ext in ("png", "pdf")
        }
    )
    return outputs


def instance_final_output():
    """Submissions, test label maps, tuned settings, the table, the figures and learning curves."""
    outputs = expand("results/submission/{ensemble}.csv", ensemble=ENSEMBLES)
    outputs += expand("results/instance_maps/{ensemble}", ensemble=ENSEMBLES)
    outputs += expand("results/tuning/{name}/best.json", name=tuning_names())
    outputs += ["results/tables/instances.csv", "results/tables/instances.md"]
    outputs += list(instance_figure_outputs().values())
    outputs += expand(
        "results/figures/learning_curves/{model}.{ext}",
        model=MODELS,
        ext=["png", "pdf"],
    )
    return outputs


if config["data"]["synthetic"]["enabled"]:

    rule synthesize_nuclei:
        output:
            train=directory(f"{RAW}/stage1_train"),
            test=directory(f"{RAW}/stage1_test"),
            fingerprint=RAW_FINGERPRINT,
        log:
            "results/logs/synthesize.log",
        benchmark:
            "results/benchmarks/synthesize.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            settings=synthetic_settings(),
            code=script_code("synthesize_nuclei"),
        script:
            "../scripts/synthesize_nuclei.py"


rule nuclei_sheet:
    input:
        **nuclei_raw_inputs(),
        fingerprint=RAW_FINGERPRINT,
    output:
        sheet="results/instances/sheet.tsv",
        labels=directory("results/instances/labels"),
        targets=directory("results/instances/targets"),
        images=directory("results/instances/images"),
    log:
        "results/logs/nuclei_sheet.log",
    benchmark:
        "results/benchmarks/nuclei_sheet.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        group=config["instances"]["group"],
        boundary=config["instances"]["boundary"],
        code=script_code("nuclei_sheet"),
    script:
        "../scripts/nuclei_sheet.py"


rule tune_instances:
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
    threads: 1
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        members=tune_members,
        classes=CLASSES,
        options=instance_options(),
        code=script_code("tune_instances"),
    script:
        "../scripts/tune_instances.py"


rule instance_maps:
    input:
        means=member_test_means,
        test="results/manifest/test.csv",
        best="results/tuning/{ensemble}/best.json",
    output:
        maps=directory("results/instance_maps/{ensemble}"),
        submission="results/submission/{ensemble}.csv",
    log:
        "results/logs/instance_maps/{ensemble}.log",
    benchmark:
        "results/benchmarks/instance_maps/{ensemble}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        classes=CLASSES,
        code=script_code("instance_maps"),
    script:
        "../scripts/instance_maps.py"


rule instance_table:
    input:
        per_image=expand("results/tuning/{name}/per_image.csv", name=tuning_names()),
    output:
        csv="results/tables/instances.csv",
        md="results/tables/instances.md",
    log:
        "results/logs/tables/instances.log",
    benchmark:
        "results/benchmarks/tables/instances.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=tuning_names(),
        kinds=tuning_kinds(),
        bootstrap=config["summary"],
        code=script_code("instance_table"),
    script:
        "../scripts/instance_table.py"


rule figure_instances:
    input:
        unpack(instance_figure_inputs),
    output:
        **instance_figure_outputs(),
    log:
        "results/logs/figures/instances.log",
    benchmark:
        "results/benchmarks/figures/instances.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=tuning_names(),
        members={name: members_of(name) for name in tuning_names()},
        classes=CLASSES,
        style=config["figures"],
        code=script_code("figure_instances"),
    script:
        "../scripts/figure_instances.py"
