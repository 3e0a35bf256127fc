# Figures and tables, rendered from files under results/ alone: deleting them and
# rerunning `snakemake figures` retrains and re-predicts nothing.


rule figure_tuning:
    input:
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
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
    params:
        style=config["figures"],
        code=code_version("figures"),
    log:
        "results/logs/figures/tuning_{name}.log",
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    conda:
        "../../envs/plexus.yaml"
    script:
        "../scripts/figure_tuning.py"


rule figures:
    input:
        figure_targets(),
