# Cutoff x minimum-area tuning on out-of-fold probabilities, for every model and
# every ensemble (members' probabilities averaged at 420x580, same folds).


rule tune:
    input:
        unpack(member_oofs),
        folds="results/splits/folds.csv",
        masks="results/manifest/train_masks.csv",
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
        cutoffs=grid_values(config["tuning"]["cutoffs"]),
        min_areas=grid_values(config["tuning"]["min_areas"], integer=True),
        presence_thresholds=grid_values(config["tuning"]["presence_thresholds"]),
        code=script_code("tune"),
    script:
        "../scripts/tune.py"
