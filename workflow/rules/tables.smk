# The results table of every model and ensemble, with subject-level bootstrap CIs.


rule summary_table:
    input:
        best=expand("results/tuning/{name}/best.json", name=tuning_names()),
        per_image=expand("results/tuning/{name}/per_image.csv", name=tuning_names()),
        postprocess=expand("results/postprocess/{name}.json", name=tuning_names()),
    output:
        csv=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Results",
        ),
        md="results/tables/summary.md",
    log:
        "results/logs/figures/summary_table.log",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=tuning_names(),
        kinds=tuning_kinds(),
        members=[members_of(name) for name in tuning_names()],
        n_boot=config["summary"]["bootstrap_samples"],
        seed=config["summary"]["seed"],
        code=script_code("summary_table"),
    script:
        "../scripts/summary_table.py"
