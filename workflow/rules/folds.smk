# Subject-grouped, stratified folds of the training manifest (every workflow).


rule folds:
    input:
        "results/manifest/train.csv",
    output:
        "results/splits/folds.csv",
    log:
        "results/logs/folds.log",
    benchmark:
        "results/benchmarks/folds.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        n_folds=config["cv"]["n_folds"],
        stratify=config["cv"]["stratify"],
        seed=config["cv"]["seed"],
        code=script_code("folds"),
    script:
        "../scripts/folds.py"
