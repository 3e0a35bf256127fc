# Shared Python of the workflow: config validation, names, input functions,
# per-rule settings and resources. Rules stay declarative and use these by name.
import sys
from pathlib import Path
from types import SimpleNamespace

# this checkout's plexus, whatever the environment has installed (the scripts do the same)
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from plexus import runs
from plexus.codehash import code_version, task_code_version
from plexus.config import ignored_classes, learnt_classes, validate_config
from plexus.config_checks import check_config
from plexus.data.fingerprint import refresh_part as refresh_fingerprint
from plexus.evaluation.heldout import check_test_mask_cells
from plexus.tasks import load_task, task_module, task_of

validate_config(config)

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
RAW = config["data"]["raw_dir"].rstrip("/")
FOLDS = list(range(config["cv"]["n_folds"]))
MODELS = config["models"]
ROBUSTNESS = config["robustness"]
NOISE = ROBUSTNESS["noise"]
TRAIN_SIZE = ROBUSTNESS["train_size"]
MISSING = ROBUSTNESS["missing_channel"]
FORMAT = config["data"]["format"]
# the task axis: what the study does with its data (plexus.tasks); every stage rule calls it
TASK_NAME = task_of(config)
TASK = load_task(TASK_NAME)
# resolved once: the report and results/config.yaml say which task ran
config["task"] = TASK_NAME
# the classes the network learns; the ignored ones (ignore:) only mark pixels that count nowhere
IGNORE = ignored_classes(config)
CLASSES = learnt_classes(config)


check_config(config)


# a run: a model, or a model trained for a robustness study (plexus.runs.parse_run)
wildcard_constraints:
    model=runs.NAME,
    name=runs.NAME,
    ensemble=runs.NAME,
    run=f"{runs.ROBUSTNESS_RUN}|{runs.NAME}",
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


def task_code(stage, script="task_stage"):
    """Code version of a stage job: its script and what that stage of the task can run."""
    return task_code_version(
        SCRIPTS / f"{script}.py", SRC, task_module(TASK_NAME), stage
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
RAW_PARTS = runs.raw_parts(config)


if workflow.is_main_process:
    for _part, _record in runs.RAW_FINGERPRINTS.items():
        refresh_fingerprint(RAW, _part, RAW_PARTS[_part], _record)
    if runs.test_masks_part(config):
        refresh_fingerprint(
            RAW, "test_masks", runs.test_masks_part(config), runs.TEST_MASKS_FINGERPRINT
        )
    # a sheet's test rows have masks exactly when data.test_masks says so: checked before any job
    check_test_mask_cells(config)


def synthetic_settings():
    """The generator's arguments: the synthetic section without its switch and kind."""
    return {
        k: v
        for k, v in config["data"]["synthetic"].items()
        if k not in ("enabled", "kind")
    }


def with_folders(outputs, folders):
    """Snakemake outputs: those named in ``folders`` as directory()."""
    return {k: directory(v) if k in folders else v for k, v in outputs.items()}


# -- names -----------------------------------------------------------------------------


def size_of(run):
    return runs.input_size(config, run)


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


def test_fold_probs(wildcards):
    return expand(
        "results/test_probs/{model}/fold{fold}.npz", model=wildcards.model, fold=FOLDS
    )


def member_oofs(wildcards):
    return {
        f"oof_{member}": expand(
            "results/oof/{run}/fold{fold}.npz", run=member, fold=FOLDS
        )
        for member in runs.members_of(config, wildcards.name)
    }


def model_train_npz(wildcards):
    """The arrays of a model (an ensemble: of its first member), whose images a panel draws."""
    first = runs.members_of(config, wildcards.model)[0]
    return f"results/preprocessed/{size_of(first)}/train.npz"


def panel_oofs(wildcards):
    """The OOF files of every member of a panel's model or ensemble (``oof_{member}``)."""
    return member_oofs(SimpleNamespace(name=wildcards.model))


def tune_members(wildcards):
    return runs.members_of(config, wildcards.name)


def member_test_means(wildcards):
    return [
        f"results/test_probs/{m}/mean.npz"
        for m in runs.members_of(config, wildcards.ensemble)
    ]
