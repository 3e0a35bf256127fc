# The task's decision tuned on the out-of-fold probabilities, for every model and every
# ensemble (members' probabilities averaged at each image's original size, same folds).


rule tune:
    input:
        unpack(member_oofs),
        **task_inputs("tune"),
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
        task=TASK_NAME,
        members=tune_members,
        settings=task_settings("tune"),
        code=task_code("tune"),
    script:
        "../scripts/task_stage.py"
