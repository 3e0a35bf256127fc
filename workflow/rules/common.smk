# Shared Python of the workflow: config validation, names, input functions,
# per-rule settings and resources. Rules stay declarative and use these by name.
import re
import sys
from pathlib import Path

# this checkout's plexus, whatever the environment has installed (the scripts do the same)
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from plexus.codehash import code_version, task_code_version
from plexus.config import (
    check_config,
    grid_values,
    ignored_classes,
    learnt_classes,
    task_name,
    validate_config,
)
from plexus.data.fingerprint import refresh as refresh_fingerprint
from plexus.stages.data import CONVERTED_FORMATS, MANIFEST_FILES
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
SHEET = (
    config["data"]["sheet"]
    if Path(config["data"]["sheet"]).is_absolute()
    else f"{RAW}/{config['data']['sheet']}"
)


check_config(config)


NAME = r"[A-Za-z][A-Za-z0-9_]*"
# a model trained for a robustness study: its name and the study's suffix (see parse_run)
ROBUSTNESS_RUN = NAME + r"--(noisy|n[0-9.]+-s[0-9]+)"


wildcard_constraints:
    model=NAME,
    name=NAME,
    ensemble=NAME,
    run=f"{ROBUSTNESS_RUN}|{NAME}",
    fold=r"\d+",
    size=r"\d+x\d+",
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


# -- raw data: a fingerprint of names, sizes and mtimes, refreshed on every start; ingest
# reruns when it changes (an in-place rewrite leaves the folders' own mtimes alone)
RAW_FINGERPRINT = "results/manifest/raw_fingerprint.json"


def raw_sheet_names():
    """The sheet's path under raw_dir, left out of the fingerprint (an input Snakemake tracks)."""
    sheet = Path(SHEET)
    return (sheet.relative_to(RAW).as_posix(),) if sheet.is_relative_to(RAW) else ()


if workflow.is_main_process:
    # the Kaggle layout's dataset is train/ and test/; a sheet's the whole tree under raw_dir
    if FORMAT == "kaggle_nerve":
        refresh_fingerprint(RAW, RAW_FINGERPRINT)
    else:
        refresh_fingerprint(RAW, RAW_FINGERPRINT, None, exclude=raw_sheet_names())


def synthetic_settings():
    """The generator's arguments: the synthetic section without its switch and kind."""
    return {
        k: v
        for k, v in config["data"]["synthetic"].items()
        if k not in ("enabled", "kind")
    }


def synthetic_outputs():
    """The folders (or sheet) the embedded synthetic dataset writes, by its kind."""
    kind = config["data"]["synthetic"]["kind"]
    if kind == "nerve":
        return {"train": directory(f"{RAW}/train"), "test": directory(f"{RAW}/test")}
    if kind == "nuclei":
        return {
            "train": directory(f"{RAW}/stage1_train"),
            "test": directory(f"{RAW}/stage1_test"),
        }
    return {"sheet": SHEET}


def converted_inputs():
    """The DSB2018 folders the conversion reads: stage1_test only where it exists (or is generated)."""
    folders = {"train": f"{RAW}/stage1_train"}
    if config["data"]["synthetic"]["enabled"] or Path(RAW, "stage1_test").is_dir():
        folders["test"] = f"{RAW}/stage1_test"
    return folders


def dataset_inputs():
    """What the manifest reads: the raw folders, the sheet, or the converted sheet (dsb2018)."""
    if FORMAT == "kaggle_nerve":
        return [f"{RAW}/train", f"{RAW}/test"]
    if FORMAT in CONVERTED_FORMATS:
        return [CONVERTED["sheet"]]
    if FORMAT == "sheet":
        return [SHEET]
    folders = config["data"]["folders"]
    others = [
        folders[k]
        for k in ("test",) + (() if folders["cases"] else ("masks",))
        if folders[k]
    ]
    # a folder the layout does not have (no test/) is no input; the raw fingerprint sees every file
    paths = [f"{RAW}/{folders['images']}"]
    paths += [f"{RAW}/{name}" for name in others if Path(RAW, name).exists()]
    return sorted(set(paths))


# -- names -----------------------------------------------------------------------------


def tuning_names():
    """Every model and every ensemble gets tuned (a model is an ensemble of one)."""
    return list(MODELS) + list(ENSEMBLES)


def members_of(name):
    return list(ENSEMBLES[name]) if name in ENSEMBLES else [name]


def parse_run(run):
    """``unet`` -> (unet, None, None); ``unet--noisy``; ``unet--n0.5-s1`` (size, seed)."""
    model, _, suffix = run.partition("--")
    if model not in MODELS:
        raise ValueError(f"run {run!r}: unknown model {model!r}")
    if suffix == "noisy":
        return model, "noisy", None
    if match := re.fullmatch(r"n([0-9.]+)-s([0-9]+)", suffix):
        return model, None, {"size": float(match[1]), "seed": int(match[2])}
    return model, None, None


def number_name(value):
    """0.5 -> '0.5', 40.0 -> '40': a stable, short wildcard value."""
    return f"{float(value):g}"


def size_of(run):
    height, width = MODELS[parse_run(run)[0]]["input_size"]
    return f"{height}x{width}"


def manifest_outputs():
    """train.csv, test.csv, summary.json and what the data format writes beside them."""
    outputs = {
        "train": "results/manifest/train.csv",
        "test": "results/manifest/test.csv",
        "summary": "results/manifest/summary.json",
    }
    return outputs | {k: v for k, v in MANIFEST_FILES[FORMAT].items()}


# a format converted to a sample sheet first (the convert rule of data.smk)
CONVERTED = {
    "sheet": "results/converted/sheet.tsv",
    "labels": "results/converted/labels",
    "targets": "results/converted/targets",
    "images": "results/converted/images",
}


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


# the noise study's training conditions: the main checkpoints (no retraining) and the
# clean+noisy retrain (``--noisy`` runs); one job predicts both at a sigma
NOISE_CONDITIONS = ["clean", "noisy"]


def noisy_condition_models(wildcards):
    """Each training condition's fold models: ``{"clean": [...], "noisy": [...]}``."""
    return {
        condition: expand(
            "results/models/{run}/fold{fold}/model.pt",
            run=robust_model() + ("--noisy" if condition == "noisy" else ""),
            fold=FOLDS,
        )
        for condition in NOISE_CONDITIONS
    }


def noise_entries():
    """(input key, condition, sigma) of every noise evaluation."""
    return [
        [f"{condition}_{number_name(sigma)}", condition, float(sigma)]
        for condition in NOISE_CONDITIONS
        for sigma in NOISE["sigmas"]
    ]


def noise_prediction_files(wildcards):
    return {
        key: f"results/robustness/noise/{condition}/sigma{number_name(sigma)}.npz"
        for key, condition, sigma in noise_entries()
    }


def train_size_entries():
    """(input key, size, seed) of every training-size run."""
    return [
        [f"n{number_name(size)}_s{seed}", float(size), int(seed)]
        for size in TRAIN_SIZE["sizes"]
        for seed in TRAIN_SIZE["seeds"]
    ]


def train_size_oof_files(wildcards):
    files = {
        key: expand(
            "results/oof/{run}/fold{fold}.npz",
            run=f"{robust_model()}--n{number_name(size)}-s{seed}",
            fold=FOLDS,
        )
        for key, size, seed in train_size_entries()
    }
    files["full"] = expand(
        "results/oof/{run}/fold{fold}.npz", run=robust_model(), fold=FOLDS
    )
    return files


def train_size_infos(wildcards):
    """train_info.json of every training-size run (and the full run): its image counts."""
    return {
        f"info_{key}": expand(
            "results/models/{run}/fold{fold}/train_info.json",
            run=f"{robust_model()}--n{number_name(size)}-s{seed}",
            fold=FOLDS,
        )
        for key, size, seed in train_size_entries()
    } | {
        "info_full": expand(
            "results/models/{run}/fold{fold}/train_info.json",
            run=robust_model(),
            fold=FOLDS,
        )
    }


def studies():
    """The robustness studies switched on (the task checks it scores them)."""
    return [
        study
        for study in ("noise", "train_size", "missing_channel")
        if ROBUSTNESS[study]["enabled"]
    ]


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
    model, noisy, subset = parse_run(wildcards.run)
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


# -- targets --------------------------------------------------------------------------


def get_final_output():
    """Submissions and label maps, tuned settings and decisions, study scores, figures and tables."""
    outputs = expand("results/submission/{ensemble}.csv", ensemble=ENSEMBLES)
    outputs += expand("results/labelmaps/{ensemble}", ensemble=ENSEMBLES)
    outputs += expand("results/tuning/{name}/best.json", name=tuning_names())
    outputs += expand("results/postprocess/{name}.json", name=tuning_names())
    outputs += [f"results/robustness/{study}/scores.csv" for study in studies()]
    return outputs + figure_targets()


def figure_targets():
    """Every figure (PNG and PDF) and every table."""
    targets = expand(
        "results/figures/learning_curves/{model}.{ext}",
        model=MODELS,
        ext=["png", "pdf"],
    )
    for path, _ in TASK.figure_files("figure_tuning").values():
        targets += expand(path, name=tuning_names())
    for path, _ in TASK.figure_files("figure_qualitative").values():
        targets += expand(path, model=MODELS)
    targets += expand(
        "results/figures/robustness/{study}.{ext}", study=studies(), ext=["png", "pdf"]
    )
    targets += expand(
        "results/tables/{table}.{ext}",
        table=["summary", "comparison", "pairwise"],
        ext=["csv", "md"],
    )
    targets += expand(
        "results/figures/comparison/{kind}.{ext}",
        kind=["models", "pairwise"],
        ext=["png", "pdf"],
    )
    return targets


def write_provenance():
    """results/provenance.json: git commit and dirtiness, config hash, versions, devices."""
    from plexus.provenance import write

    write("results/provenance.json", workflow.basedir, config, "results")
