# Post-processing candidates decided on out-of-fold predictions, for every model and
# ensemble, with the cross-fitted estimate (each fold scored by a setting it did not choose).


rule postprocess:
    input:
        unpack(member_oofs),
        folds="results/splits/folds.csv",
        masks="results/manifest/train_masks.csv",
        manifest="results/manifest/train.csv",
        grid="results/tuning/{name}/grid.csv",
        best="results/tuning/{name}/best.json",
    output:
        json="results/postprocess/{name}.json",
        decisions=report(
            "results/postprocess/{name}.csv",
            caption="../report/postprocess.rst",
            category="Post-processing",
            subcategory="{name}",
        ),
        per_image="results/postprocess/{name}_per_image.csv",
    log:
        "results/logs/postprocess/{name}.log",
    benchmark:
        "results/benchmarks/postprocess/{name}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        members=tune_members,
        options=postprocess_options(),
        n_boot=config["postprocess"]["bootstrap_samples"],
        seed=config["postprocess"]["seed"],
        code=script_code("postprocess"),
    script:
        "../scripts/postprocess.py"
