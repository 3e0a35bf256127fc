# An ensemble's fold-averaged test probabilities -> the decision made on OOF -> the submission
# (the task's format) and the test label maps.


rule submission:
    input:
        means=member_test_means,
        decision="results/postprocess/{ensemble}.json",
        best="results/tuning/{ensemble}/best.json",
        test="results/manifest/test.csv",
    output:
        csv="results/submission/{ensemble}.csv",
        summary="results/submission/{ensemble}.json",
        labelmaps=directory("results/labelmaps/{ensemble}"),
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
        task=TASK_NAME,
        settings=task_settings("submission"),
        code=task_code("submission"),
    script:
        "../scripts/task_stage.py"
