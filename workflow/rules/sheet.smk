# The generic workflow's data (data.format folders, sheet or dsb2018): a sample sheet ->
# a validated manifest -> arrays at each model input size (plexus.stages.classes).

if config["data"]["synthetic"]["enabled"] and not INSTANCES:

    rule synthesize_sheet:
        output:
            sheet=SHEET,
            fingerprint=RAW_FINGERPRINT,
        log:
            "results/logs/synthesize.log",
        benchmark:
            "results/benchmarks/synthesize.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            kind=config["data"]["synthetic"]["kind"],
            settings=synthetic_settings(),
            raw=RAW,
            code=script_code("synthesize_sheet"),
        script:
            "../scripts/synthesize_sheet.py"


rule manifest:
    input:
        sheet=dataset_inputs(),
        fingerprint=RAW_FINGERPRINT,
    output:
        sheet="results/manifest/sheet.tsv",
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
        summary="results/manifest/summary.json",
    log:
        "results/logs/manifest.log",
    benchmark:
        "results/benchmarks/manifest.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        data=config["data"],
        classes=CLASSES,
        ignore=IGNORE,
        code=script_code("manifest"),
    script:
        "../scripts/manifest.py"


rule preprocess_sheet:
    input:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
        summary="results/manifest/summary.json",
    output:
        train="results/preprocessed/{size}/train.npz",
        test="results/preprocessed/{size}/test.npz",
    log:
        "results/logs/preprocess/{size}.log",
    benchmark:
        "results/benchmarks/preprocess/{size}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        classes=CLASSES,
        ignore=IGNORE,
        code=script_code("preprocess_sheet"),
    script:
        "../scripts/preprocess_sheet.py"
