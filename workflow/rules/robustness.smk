# Robustness studies on the folds of robustness.model: noise injection (reusing the
# main checkpoints, and a clean+noisy retrain) and training-set size (subject subsets).
# Their networks are trained by the one `train` rule (runs `{model}--noisy`,
# `{model}--n{size}-s{seed}`), so on SLURM they fan out as ordinary GPU jobs.


if NOISE["enabled"]:

    rule predict_noisy:
        input:
            unpack(lambda w: runs.noisy_condition_models(config, FOLDS)),
            data=f"results/preprocessed/{runs.input_size(config, ROBUSTNESS['model'])}/train.npz",
            folds="results/splits/folds.csv",
        output:
            **{
                condition: f"results/robustness/noise/{condition}/sigma{{sigma}}.npz"
                for condition in runs.NOISE_CONDITIONS
            },
        log:
            "results/logs/predict_noisy/sigma{sigma}.log",
        benchmark:
            "results/benchmarks/predict_noisy/sigma{sigma}.tsv"
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
            conditions=list(runs.NOISE_CONDITIONS),
            sigma=lambda w: float(w.sigma),
            seed=NOISE["seed"],
            batch_size=config["predict"]["batch_size"],
            code=script_code("predict_noisy"),
        script:
            "../scripts/predict_noisy.py"


# Each study's scores, by the task's own metric at the tuned decision of robustness.model.


if NOISE["enabled"]:

    rule noise_scores:
        input:
            unpack(lambda w: runs.noise_prediction_files(config)),
            **runs.study_inputs(config, task_inputs("noise_scores")),
        output:
            "results/robustness/noise/scores.csv",
        log:
            "results/logs/robustness/noise_scores.log",
        benchmark:
            "results/benchmarks/robustness/noise_scores.tsv"
        priority: PRIORITY_PIPELINE
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            task=TASK_NAME,
            entries=runs.noise_entries(config),
            settings=task_settings("noise_scores"),
            code=task_code("noise_scores"),
        script:
            "../scripts/task_stage.py"


if TRAIN_SIZE["enabled"]:

    rule train_size_scores:
        input:
            unpack(lambda w: runs.train_size_oof_files(config, FOLDS)),
            unpack(lambda w: runs.train_size_infos(config, FOLDS)),
            **runs.study_inputs(config, task_inputs("train_size_scores")),
        output:
            "results/robustness/train_size/scores.csv",
        log:
            "results/logs/robustness/train_size_scores.log",
        benchmark:
            "results/benchmarks/robustness/train_size_scores.tsv"
        priority: PRIORITY_PIPELINE
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            task=TASK_NAME,
            entries=runs.train_size_entries(config),
            settings=task_settings("train_size_scores"),
            code=task_code("train_size_scores"),
        script:
            "../scripts/task_stage.py"


if MISSING["enabled"]:

    rule missing_channel_scores:
        input:
            **runs.study_inputs(config, task_inputs("missing_channel_scores")),
            models=expand(
                "results/models/{model}/fold{fold}/model.pt",
                model=ROBUSTNESS["model"],
                fold=FOLDS,
            ),
            data=f"results/preprocessed/{runs.input_size(config, ROBUSTNESS['model'])}/train.npz",
            summary="results/manifest/summary.json",
        output:
            "results/robustness/missing_channel/scores.csv",
        log:
            "results/logs/robustness/missing_channel_scores.log",
        benchmark:
            "results/benchmarks/robustness/missing_channel_scores.tsv"
        conda:
            "../../envs/plexus.yaml"
        threads: 1
        resources:
            gpu=1,
            runtime=predict_runtime,
            mem_mb=gpu_mem_mb,
            cpus_per_task=cpus_per_task,
        params:
            task=TASK_NAME,
            settings=task_settings("missing_channel_scores"),
            code=task_code("missing_channel_scores"),
        script:
            "../scripts/task_stage.py"
