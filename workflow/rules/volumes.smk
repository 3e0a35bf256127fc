# Back to volumes (data.format volumes): every model's and ensemble's decided OOF slices stacked
# per training case, a minimum 3-D component volume tuned per unit, scored per volume (Dice, HD95
# in mm, case-bootstrap intervals), and every ensemble's test slices written as label volumes on
# their scans' grids (plexus.stages.volumes).


rule volume_scores:
    input:
        unpack(member_oofs),
        decision="results/postprocess/{name}.json",
        train="results/manifest/train.csv",
        folds="results/splits/folds.csv",
        index=runs.CONVERTED_FILES["volumes"]["train"]["index"],
    output:
        scores="results/volumes/{name}/scores.csv",
        summary="results/volumes/{name}/summary.json",
    log:
        "results/logs/volume_scores/{name}.log",
    benchmark:
        "results/benchmarks/volume_scores/{name}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        members=tune_members,
        settings=task_settings("volumes"),
        boot=config["summary"],
        min_volumes=runs.min_volume_grid(config),
        code=script_code("volumes"),
    script:
        "../scripts/volumes.py"


rule label_volumes:
    input:
        means=member_test_means,
        decision="results/postprocess/{ensemble}.json",
        volume_summary="results/volumes/{ensemble}/summary.json",
        test="results/manifest/test.csv",
        index=runs.CONVERTED_FILES["volumes"]["test"]["index"],
    output:
        directory("results/volumes/{ensemble}/test"),
    log:
        "results/logs/label_volumes/{ensemble}.log",
    benchmark:
        "results/benchmarks/label_volumes/{ensemble}.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        task=TASK_NAME,
        members=lambda wildcards: runs.members_of(config, wildcards.ensemble),
        settings=task_settings("volumes"),
        code=script_code("volumes"),
    script:
        "../scripts/volumes.py"


# every model's and ensemble's per-volume scores in one table (and the second rater's)
rule volume_table:
    input:
        summaries=expand(
            "results/volumes/{name}/summary.json", name=runs.tuning_names(config)
        ),
    output:
        csv="results/tables/volumes.csv",
        md=report(
            "results/tables/volumes.md",
            caption="../report/volumes.rst",
            category="Tables",
        ),
    log:
        "results/logs/volume_table.log",
    benchmark:
        "results/benchmarks/volume_table.tsv"
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        names=runs.tuning_names(config),
        code=script_code("volumes"),
    script:
        "../scripts/volumes.py"
