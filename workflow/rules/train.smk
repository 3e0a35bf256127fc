# One training job per (run, fold) on a GPU.
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
    priority: train_priority
    conda:
        "../../envs/plexus.yaml"
    threads: 1
    resources:
        gpu=1,
        runtime=train_runtime,
        mem_mb=gpu_mem_mb,
        cpus_per_task=cpus_per_task,
    params:
        settings=lambda w: runs.run_settings(config, w.run),
        noise=lambda w: runs.run_noise(config, w.run),
        subset=lambda w: runs.run_subset(config, w.run),
        # the head follows the task's output (one sigmoid for binary, a softmax over the classes)
        output=TASK.output,
        # the per-epoch checkpoint is no declared output, so a killed job keeps it to resume
        checkpoint="results/checkpoints/{run}/fold{fold}.pt",
        code=script_code("train"),
    script:
        "../scripts/train.py"
