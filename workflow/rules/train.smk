# One training job per (run, fold) on a GPU, then its out-of-fold and test predictions.
# A run is a model, or a model trained for a robustness study (see parse_run).


rule train:
    input:
        data=train_npz,
        folds="results/splits/folds.csv",
    output:
        model="results/models/{run}/fold{fold}/model.pt",
        history="results/models/{run}/fold{fold}/history.csv",
        info="results/models/{run}/fold{fold}/train_info.json",
    log:
        "results/logs/train/{run}/fold{fold}.log",
    benchmark:
        "results/benchmarks/train/{run}/fold{fold}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=train_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        settings=model_settings,
        noise=train_noise,
        subset=train_subset,
        # the per-epoch checkpoint is no declared output, so a killed job keeps it to resume
        checkpoint="results/checkpoints/{run}/fold{fold}.pt",
        code=code_version("train"),
    script:
        "../scripts/train.py"


rule predict_oof:
    input:
        model="results/models/{run}/fold{fold}/model.pt",
        data=train_npz,
        folds="results/splits/folds.csv",
    output:
        "results/oof/{run}/fold{fold}.npz",
    log:
        "results/logs/predict_oof/{run}/fold{fold}.log",
    benchmark:
        "results/benchmarks/predict_oof/{run}/fold{fold}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=predict_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        batch_size=config["predict"]["batch_size"],
        code=code_version("predict"),
    script:
        "../scripts/predict.py"


rule predict_test:
    input:
        model="results/models/{model}/fold{fold}/model.pt",
        data=test_npz,
    output:
        "results/test_probs/{model}/fold{fold}.npz",
    log:
        "results/logs/predict_test/{model}/fold{fold}.log",
    benchmark:
        "results/benchmarks/predict_test/{model}/fold{fold}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=predict_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        batch_size=config["predict"]["batch_size"],
        code=code_version("predict"),
    script:
        "../scripts/predict.py"


rule average_folds:
    input:
        test_fold_probs,
    output:
        "results/test_probs/{model}/mean.npz",
    log:
        "results/logs/average_folds/{model}.log",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=code_version("average"),
    script:
        "../scripts/average_folds.py"
