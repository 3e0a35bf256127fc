# Each (run, fold) network's out-of-fold and test probabilities; the folds' test average.


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
        flips=tta_flips,
        code=script_code("predict_oof"),
    script:
        "../scripts/predict_oof.py"


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
        flips=tta_flips,
        code=script_code("predict_test"),
    script:
        "../scripts/predict_test.py"


rule average_folds:
    input:
        test_fold_probs,
    output:
        "results/test_probs/{model}/mean.npz",
    log:
        "results/logs/average_folds/{model}.log",
    benchmark:
        "results/benchmarks/average_folds/{model}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=script_code("average_folds"),
    script:
        "../scripts/average_folds.py"
