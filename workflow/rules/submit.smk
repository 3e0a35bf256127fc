# The ensemble's fold-averaged test probabilities -> post-processing decided on OOF -> RLE CSV.


rule submission:
    input:
        means=member_test_means,
        pipeline="results/postprocess/{ensemble}.json",
        manifest="results/manifest/test.csv",
    output:
        csv="results/submission/{ensemble}.csv",
        summary="results/submission/{ensemble}.json",
    log:
        "results/logs/submission/{ensemble}.log",
    benchmark:
        "results/benchmarks/submission/{ensemble}.tsv"
    priority: PRIORITY_PIPELINE
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        batch_size=config["predict"]["batch_size"],
        code=script_code("submission"),
    script:
        "../scripts/submission.py"
