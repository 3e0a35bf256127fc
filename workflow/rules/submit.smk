# The ensemble's fold-averaged test probabilities -> tuned post-processing -> RLE CSV.


rule submission:
    input:
        means=member_test_means,
        best="results/tuning/{ensemble}/best.json",
    output:
        csv="results/submission/{ensemble}.csv",
        summary="results/submission/{ensemble}.json",
    log:
        "results/logs/submission/{ensemble}.log",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        batch_size=config["predict"]["batch_size"],
        code=code_version("submit"),
    script:
        "../scripts/submission.py"
