# Robustness studies on the folds of robustness.model: noise injection (reusing the
# main checkpoints, and a clean+noisy retrain) and training-set size (subject subsets).
# Their networks are trained by the one `train` rule (runs `{model}--noisy`,
# `{model}--n{size}-s{seed}`), so on SLURM they fan out as ordinary GPU jobs.

if NOISE["enabled"]:

    rule predict_noisy:
        input:
            unpack(noisy_condition_models),
            data=robust_train_npz,
            folds="results/splits/folds.csv",
        output:
            **{
                condition: f"results/robustness/noise/{condition}/sigma{{sigma}}.npz"
                for condition in NOISE_CONDITIONS
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
            conditions=NOISE_CONDITIONS,
            sigma=sigma_value,
            seed=NOISE["seed"],
            batch_size=config["predict"]["batch_size"],
            code=script_code("predict_noisy"),
        script:
            "../scripts/predict_noisy.py"


if NOISE["enabled"] and not GENERIC:

    rule noise_scores:
        input:
            unpack(noise_prediction_files),
            best=f"results/tuning/{ROBUSTNESS.get('model')}/best.json",
            folds="results/splits/folds.csv",
            masks="results/manifest/train_masks.csv",
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
            entries=noise_entries(),
            code=script_code("noise_scores"),
        script:
            "../scripts/noise_scores.py"


if TRAIN_SIZE["enabled"] and not GENERIC:

    rule train_size_scores:
        input:
            unpack(train_size_oof_files),
            best=f"results/tuning/{ROBUSTNESS.get('model')}/best.json",
            folds="results/splits/folds.csv",
            masks="results/manifest/train_masks.csv",
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
            entries=train_size_entries(),
            code=script_code("train_size_scores"),
        script:
            "../scripts/train_size_scores.py"
