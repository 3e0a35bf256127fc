# Shared Python of the workflow: config validation, names, input functions,
# per-rule settings and resources. Rules stay declarative and use these by name.
import sys
from pathlib import Path

# this checkout's plexus, whatever the environment has installed (the scripts do the same)
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from plexus import runs
from plexus.codehash import code_version, task_code_version
from plexus.config import (
    check_config,
    grid_values,
    ignored_classes,
    learnt_classes,
    task_name,
    validate_config,
)
from plexus.data.fingerprint import refresh_part as refresh_fingerprint
from plexus.tasks import load_task, task_module

validate_config(config)

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
RAW = config["data"]["raw_dir"].rstrip("/")
FOLDS = list(range(config["cv"]["n_folds"]))
MODELS = config["models"]
ENSEMBLES = config["ensembles"]
ROBUSTNESS = config["robustness"]
NOISE = ROBUSTNESS["noise"]
TRAIN_SIZE = ROBUSTNESS["train_size"]
MISSING = ROBUSTNESS["missing_channel"]
FORMAT = config["data"]["format"]
# the task axis: what the study does with its data (plexus.tasks); every stage rule calls it
TASK_NAME = task_name(config)
TASK = load_task(TASK_NAME)
# the classes the network learns; the ignored ones (ignore:) only mark pixels that count nowhere
IGNORE = ignored_classes(config)
CLASSES = learnt_classes(config)
SHEET = runs.sheet_path(config)


check_config(config)


NAME = runs.NAME
# a model trained for a robustness study: its name and the study's suffix (see parse_run)
ROBUSTNESS_RUN = runs.ROBUSTNESS_RUN


wildcard_constraints:
    model=NAME,
    name=NAME,
    ensemble=NAME,
    run=f"{ROBUSTNESS_RUN}|{NAME}",
    fold=r"\d+",
    size=r"\d+x\d+",
    part="train|test",
    sigma=r"[0-9.]+",


# -- code versions: Snakemake tracks a script by its own text but does not follow imports,
# so each rule carries the hash of the plexus modules its script can import (derived
# from the code by plexus.codehash); editing a module reruns exactly the rules that use it.


def script_code(script):
    """Code version of ``workflow/scripts/{script}.py`` and its plexus import closure."""
    return code_version(SCRIPTS / f"{script}.py", SRC)


def task_code(stage):
    """Code version of a stage rule: its script, and what that stage of the task can run."""
    return task_code_version(
        SCRIPTS / "task_stage.py", SRC, task_module(TASK_NAME), stage
    )


def task_settings(stage):
    """The settings this task's ``stage`` reads from the config (a change reruns its jobs)."""
    return TASK.settings(stage, config)


def task_inputs(stage):
    """The files this task's ``stage`` reads beyond the rule's own."""
    return TASK.inputs.get(stage, {})


def task_figures(stage):
    """The figures of a figure stage: output key -> path, each PNG in the report with its caption."""
    files = {}
    for key, (path, figure) in TASK.figure_files(stage).items():
        caption = f"../report/{figure.caption}"
        files[key] = (
            path
            if path.endswith(".pdf")
            else report(path, caption=caption, category=figure.category)
        )
    return files


# -- raw data: a fingerprint of names, sizes and mtimes per image set (train, test), refreshed
# on every start; a set's manifest job reruns when its own changes (an in-place rewrite leaves
# the folders' own mtimes alone), so a test image's edit never reruns the training side
PARTS = runs.PARTS
RAW_FINGERPRINTS = runs.RAW_FINGERPRINTS
RAW_PARTS = runs.raw_parts(config)


if workflow.is_main_process:
    for _part, _record in RAW_FINGERPRINTS.items():
        refresh_fingerprint(RAW, _part, RAW_PARTS[_part], _record)


def synthetic_settings():
    """The generator's arguments: the synthetic section without its switch and kind."""
    return {
        k: v
        for k, v in config["data"]["synthetic"].items()
        if k not in ("enabled", "kind")
    }


def synthetic_outputs():
    outputs, folders = runs.synthetic_outputs(config)
    return {k: directory(v) if k in folders else v for k, v in outputs.items()}


def converted_inputs(part):
    return runs.converted_inputs(config, part)


def dataset_inputs(part):
    return runs.dataset_inputs(config, part)


# -- names -----------------------------------------------------------------------------


def tuning_names():
    return runs.tuning_names(config)


def members_of(name):
    return runs.members_of(config, name)


def parse_run(run):
    return runs.parse_run(run, MODELS)


def size_of(run):
    height, width = MODELS[parse_run(run)[0]]["input_size"]
    return f"{height}x{width}"


def manifest_outputs(part):
    return runs.manifest_outputs(config, part)


CONVERTED = runs.CONVERTED
CONVERTED_TEST = runs.CONVERTED_TEST


def tta_flips(wildcards):
    """Test-time flips of a model's own predictions (not of the robustness runs)."""
    if not TASK.tta:  # a task whose decisions never read the flip-averaged maps
        return []
    return (
        list(config["predict"]["tta"])
        if wildcards.get("run", wildcards.get("model")) in MODELS
        else []
    )


# -- input functions -----------------------------------------------------------------


def train_npz(wildcards):
    return f"results/preprocessed/{size_of(wildcards.run)}/train.npz"


def fold_models(wildcards):
    """Every fold's network of the job's run (a model or a robustness run), in fold order."""
    run = wildcards.get("run", wildcards.get("model"))
    return expand("results/models/{run}/fold{fold}/model.pt", run=run, fold=FOLDS)


def test_npz(wildcards):
    return f"results/preprocessed/{size_of(wildcards.model)}/test.npz"


def model_settings(wildcards):
    return MODELS[parse_run(wildcards.run)[0]]


def train_noise(wildcards):
    """The clean+noisy training mix of the noise branch's ``--noisy`` runs, else None."""
    if parse_run(wildcards.run)[1] != "noisy":
        return None
    return {
        "sigma": NOISE["train_sigma"],
        "fraction": NOISE["train_fraction"],
        "seed": NOISE["seed"],
    }


def train_subset(wildcards):
    return parse_run(wildcards.run)[2]


def test_fold_probs(wildcards):
    return expand(
        "results/test_probs/{model}/fold{fold}.npz", model=wildcards.model, fold=FOLDS
    )


def member_oofs(wildcards):
    return {
        f"oof_{member}": expand(
            "results/oof/{run}/fold{fold}.npz", run=member, fold=FOLDS
        )
        for member in members_of(wildcards.name)
    }


def tuning_kinds():
    return ["ensemble" if name in ENSEMBLES else "model" for name in tuning_names()]


def model_histories(wildcards):
    return expand(
        "results/models/{model}/fold{fold}/history.csv",
        model=wildcards.model,
        fold=FOLDS,
    )


def model_train_infos(wildcards):
    return expand(
        "results/models/{model}/fold{fold}/train_info.json",
        model=wildcards.model,
        fold=FOLDS,
    )


def model_oofs(wildcards):
    return expand(
        "results/oof/{model}/fold{fold}.npz", model=wildcards.model, fold=FOLDS
    )


def model_train_npz(wildcards):
    return f"results/preprocessed/{size_of(wildcards.model)}/train.npz"


def tune_members(wildcards):
    return members_of(wildcards.name)


def member_test_means(wildcards):
    return [f"results/test_probs/{m}/mean.npz" for m in members_of(wildcards.ensemble)]


def ensemble_members(wildcards):
    return members_of(wildcards.ensemble)


# -- robustness studies ------------------------------------------------------------------


def robust_model():
    return ROBUSTNESS.get("model")


def robust_train_npz(wildcards):
    return f"results/preprocessed/{size_of(robust_model())}/train.npz"


def sigma_value(wildcards):
    return float(wildcards.sigma)


def study_rule_inputs(stage):
    """The task's extra inputs of a study's scores, and the tuned decision it scores at."""
    return task_inputs(stage) | {
        "best": f"results/tuning/{robust_model()}/best.json",
        "folds": "results/splits/folds.csv",
        "train": "results/manifest/train.csv",
    }


def noisy_condition_models(wildcards):
    return runs.noisy_condition_models(config, FOLDS)


def noise_entries():
    return runs.noise_entries(config)


def noise_prediction_files(wildcards):
    return runs.noise_prediction_files(config)


def train_size_entries():
    return runs.train_size_entries(config)


def train_size_oof_files(wildcards):
    return runs.train_size_oof_files(config, FOLDS)


def train_size_infos(wildcards):
    return runs.train_size_infos(config, FOLDS)


def studies():
    return runs.studies(config)


# -- targets (plexus.runs) -------------------------------------------------------------


def get_final_output():
    return runs.final_targets(config, TASK)


def figure_targets():
    return runs.figure_targets(config, TASK)


def write_provenance():
    """results/provenance.json: git commit and dirtiness, config hash, versions, devices."""
    from plexus.provenance import write

    write("results/provenance.json", workflow.basedir, config, "results")
