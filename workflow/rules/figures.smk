# Figures and tables, rendered from files under results/ alone: deleting them and
# rerunning `snakemake figures` retrains and re-predicts nothing. Each PNG goes
# into the report (`snakemake --report results/report.html`) with its caption.


rule figure_tuning:
    input:
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
        per_image="results/tuning/{name}/per_image.csv",
    output:
        **task_figures("figure_tuning"),
    log:
        "results/logs/figures/tuning_{name}.log",
    benchmark:
        "results/benchmarks/figures/tuning_{name}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        style=config["figures"],
        settings=task_settings("figure_tuning"),
        code=task_code("figure_tuning"),
    script:
        "../scripts/task_stage.py"


rule figure_learning_curves:
    input:
        histories=lambda w: runs.fold_files(
            "results/models/{run}/fold{fold}/history.csv", w.model, FOLDS
        ),
        # collapse events, marked on the curves, and what the validation was measured on
        train_infos=lambda w: runs.fold_files(
            "results/models/{run}/fold{fold}/train_info.json", w.model, FOLDS
        ),
    output:
        png=report(
            "results/figures/learning_curves/{model}.png",
            caption="../report/learning_curves.rst",
            category="Training",
        ),
        pdf="results/figures/learning_curves/{model}.pdf",
    log:
        "results/logs/figures/learning_curves_{model}.log",
    benchmark:
        "results/benchmarks/figures/learning_curves_{model}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        style=config["figures"],
        code=script_code("figure_learning_curves"),
    script:
        "../scripts/figure_learning_curves.py"


rule figure_qualitative:
    input:
        unpack(panel_oofs),
        **task_inputs("figure_qualitative"),
        per_image="results/tuning/{model}/per_image.csv",
        best="results/tuning/{model}/best.json",
        decision="results/postprocess/{model}.json",
        decision_per_image="results/postprocess/{model}_per_image.csv",
        train="results/manifest/train.csv",
        data=model_train_npz,
    output:
        **task_figures("figure_qualitative"),
    log:
        "results/logs/figures/qualitative_{model}.log",
    benchmark:
        "results/benchmarks/figures/qualitative_{model}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        style=config["figures"],
        members=lambda w: runs.members_of(config, w.model),
        settings=task_settings("figure_qualitative"),
        code=task_code("figure_qualitative"),
    script:
        "../scripts/task_stage.py"


rule figure_robustness:
    input:
        scores="results/robustness/{study}/scores.csv",
    output:
        png=report(
            "results/figures/robustness/{study}.png",
            caption="../report/robustness.rst",
            category="Robustness",
        ),
        pdf="results/figures/robustness/{study}.pdf",
    log:
        "results/logs/figures/{study}.log",
    benchmark:
        "results/benchmarks/figures/{study}.tsv"
    wildcard_constraints:
        study="noise|train_size|missing_channel",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        stage=lambda wildcards: f"figure_{wildcards.study}",
        style=config["figures"],
        code=lambda wildcards: task_code(f"figure_{wildcards.study}"),
    script:
        "../scripts/task_stage.py"


rule figures:
    input:
        runs.figure_targets(config, TASK),
