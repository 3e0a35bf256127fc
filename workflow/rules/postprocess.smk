# Post-processing decided on out-of-fold predictions, for every model and ensemble, with the
# cross-fitted estimate (each fold scored by a decision it did not choose).


rule postprocess:
    input:
        unpack(member_oofs),
        **task_inputs("postprocess"),
        folds="results/splits/folds.csv",
        train="results/manifest/train.csv",
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
        per_image="results/tuning/{name}/per_image.csv",
    output:
        json="results/postprocess/{name}.json",
        decisions=report(
            "results/postprocess/{name}.csv",
            caption="../report/postprocess.rst",
            category="Post-processing",
            subcategory="{name}",
        ),
        per_image="results/postprocess/{name}_per_image.csv",
    log:
        "results/logs/postprocess/{name}.log",
    benchmark:
        "results/benchmarks/postprocess/{name}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        members=tune_members,
        settings=task_settings("postprocess"),
        code=task_code("postprocess"),
    script:
        "../scripts/task_stage.py"
