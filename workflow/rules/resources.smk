# Scheduling priorities and resources of every rule (functions only; see common.smk for the rest).


# -- scheduling -----------------------------------------------------------------------
# On a few local cores the ready jobs queue; these priorities order them (SLURM gets every
# ready job at once). The models train first, so their predictions, tuning and
# post-processing run beside the robustness studies' trainings instead of after them; the
# noise study's trainings go before the training-size study's (more jobs wait on them);
# figures and tables (priority 0) fill the gaps.
PRIORITY_MODEL_TRAINING = 4
PRIORITY_PIPELINE = 3
PRIORITY_NOISY_TRAINING = 2
PRIORITY_SUBSET_TRAINING = 1


def train_priority(wildcards):
    model, noisy, subset = runs.parse_run(wildcards.run, MODELS)
    if noisy:
        return PRIORITY_NOISY_TRAINING
    if subset is not None:
        return PRIORITY_SUBSET_TRAINING
    return PRIORITY_MODEL_TRAINING


# -- resources: GPU jobs ask for one GPU; retries get more time and memory ----------------


def train_runtime(wildcards, attempt):
    return 120 * attempt


def predict_runtime(wildcards, attempt):
    return 30 * attempt


def light_runtime(wildcards, attempt):
    return 20 * attempt


def cpus_per_task(wildcards, threads):
    return threads


def gpu_mem_mb(wildcards, attempt):
    return 8000 * attempt


def light_mem_mb(wildcards, attempt):
    return 4000 * attempt
