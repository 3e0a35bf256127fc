# Figures and tables, rendered from files under results/ alone: deleting them and
# rerunning `snakemake figures` retrains and re-predicts nothing. Each PNG goes
# into the report (`snakemake --report results/report.html`) with its caption.


rule figure_tuning:
    input:
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
        per_image="results/tuning/{name}/per_image.csv",
    output:
        heatmap=report(
            "results/figures/tuning/{name}_heatmap.png",
            caption="../report/tuning_heatmap.rst",
            category="Tuning",
            subcategory="{name}",
        ),
        heatmap_pdf="results/figures/tuning/{name}_heatmap.pdf",
        min_area=report(
            "results/figures/tuning/{name}_min_area.png",
            caption="../report/tuning_min_area.rst",
            category="Tuning",
            subcategory="{name}",
        ),
        min_area_pdf="results/figures/tuning/{name}_min_area.pdf",
        areas=report(
            "results/figures/areas/{name}.png",
            caption="../report/areas.rst",
            category="Tuning",
            subcategory="{name}",
        ),
        areas_pdf="results/figures/areas/{name}.pdf",
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
        style=config["figures"],
        code=script_code("figure_tuning"),
    script:
        "../scripts/figure_tuning.py"


rule figure_learning_curves:
    input:
        histories=model_histories,
        train_infos=model_train_infos,  # collapse events, marked on the curves
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
        per_image="results/tuning/{model}/per_image.csv",
        best="results/tuning/{model}/best.json",
        data=model_train_npz,
        oof=model_oofs,
    output:
        png=report(
            "results/figures/qualitative/{model}.png",
            caption="../report/qualitative.rst",
            category="Predictions",
        ),
        pdf="results/figures/qualitative/{model}.pdf",
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
        style=config["figures"],
        code=script_code("figure_qualitative"),
    script:
        "../scripts/figure_qualitative.py"


rule figure_noise:
    input:
        "results/robustness/noise/scores.csv",
    output:
        png=report(
            "results/figures/robustness/noise.png",
            caption="../report/noise.rst",
            category="Robustness",
        ),
        pdf="results/figures/robustness/noise.pdf",
    log:
        "results/logs/figures/noise.log",
    benchmark:
        "results/benchmarks/figures/noise.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        style=config["figures"],
        code=script_code("figure_noise"),
    script:
        "../scripts/figure_noise.py"


rule figure_train_size:
    input:
        "results/robustness/train_size/scores.csv",
    output:
        png=report(
            "results/figures/robustness/train_size.png",
            caption="../report/train_size.rst",
            category="Robustness",
        ),
        pdf="results/figures/robustness/train_size.pdf",
    log:
        "results/logs/figures/train_size.log",
    benchmark:
        "results/benchmarks/figures/train_size.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        style=config["figures"],
        code=script_code("figure_train_size"),
    script:
        "../scripts/figure_train_size.py"


rule figures:
    input:
        figure_targets(),
