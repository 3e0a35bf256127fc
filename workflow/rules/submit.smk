# The ensemble's fold-averaged test probabilities -> tuned post-processing -> RLE CSV.


rule submission:
    input:
        means=member_test_means,
        best="results/tuning/{ensemble}/best.json",
    output:
        csv="results/submission/{ensemble}.csv",
        summary="results/submission/{ensemble}.json",
    params:
        batch_size=config["predict"]["batch_size"],
        code=code_version("submit"),
    log:
        "results/logs/submission/{ensemble}.log",
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    conda:
        "../../envs/plexus.yaml"
    script:
        "../scripts/submission.py"
