# Each run's out-of-fold (and, for a model, test) probabilities: one job per run predicts
# with all its folds' networks, in one process; the folds' test average.


rule predict:
    input:
        models=fold_models,
        data=model_train_npz,
        test=test_npz,
        folds="results/splits/folds.csv",
    output:
        oof=expand("results/oof/{{model}}/fold{fold}.npz", fold=FOLDS),
        test=expand("results/test_probs/{{model}}/fold{fold}.npz", fold=FOLDS),
    log:
        "results/logs/predict/{model}.log",
    benchmark:
        "results/benchmarks/predict/{model}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=predict_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        folds=FOLDS,
        batch_size=config["predict"]["batch_size"],
        flips=tta_flips,
        code=script_code("predict"),
    script:
        "../scripts/predict.py"


# the robustness runs (a model trained on noise or on a subset) need no test predictions
rule predict_oof:
    input:
        models=fold_models,
        data=train_npz,
        folds="results/splits/folds.csv",
    output:
        oof=expand("results/oof/{{run}}/fold{fold}.npz", fold=FOLDS),
    log:
        "results/logs/predict_oof/{run}.log",
    benchmark:
        "results/benchmarks/predict_oof/{run}.tsv"
    wildcard_constraints:
        run=ROBUSTNESS_RUN,
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=predict_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        folds=FOLDS,
        batch_size=config["predict"]["batch_size"],
        flips=tta_flips,
        code=script_code("predict"),
    script:
        "../scripts/predict.py"


rule average_folds:
    input:
        test_fold_probs,
    output:
        "results/test_probs/{model}/mean.npz",
    log:
        "results/logs/average_folds/{model}.log",
    benchmark:
        "results/benchmarks/average_folds/{model}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=script_code("average_folds"),
    script:
        "../scripts/average_folds.py"
