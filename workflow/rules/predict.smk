# Each run's out-of-fold probabilities and each model's test probabilities: one job per run
# (and one per model for the test images) predicts with all its folds' networks, in one
# process; the folds' test average. The two are separate jobs, so that a change to the test
# images reruns the test predictions only, never an OOF file (nor what is tuned on them).


rule predict:
    input:
        models=fold_models,
        test=test_npz,
    output:
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


# every run's held-out images: a model's, and the robustness runs' (a model trained on noise or
# on a subset), which need no test predictions
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
