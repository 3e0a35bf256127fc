# Raw data -> validated manifest -> arrays at each input size, for every data format
# (plexus.stages.data); the subject-grouped folds are in folds.smk.


if config["data"]["synthetic"]["enabled"]:

    rule synthesize:
        output:
            **synthetic_outputs(),
            fingerprint=RAW_FINGERPRINT,
        log:
            "results/logs/synthesize.log",
        benchmark:
            "results/benchmarks/synthesize.tsv"
        conda:
            "../../envs/plexus.yaml"
        threads: 2
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            kind=config["data"]["synthetic"]["kind"],
            settings=synthetic_settings(),
            # raw_dir: the folder of the first output (train/, stage1_train/ or the sheet)
            raw=lambda wildcards, output: str(Path(output[0]).parent),
            code=script_code("synthesize"),
        script:
            "../scripts/synthesize.py"


if FORMAT in runs.CONVERTED_FORMATS:

    # a layout of its own (DSB2018's folders of instance masks) -> a sample sheet of targets
    rule convert:
        input:
            **converted_inputs(),
            fingerprint=RAW_FINGERPRINT,
        output:
            sheet=CONVERTED["sheet"],
            labels=directory(CONVERTED["labels"]),
            targets=directory(CONVERTED["targets"]),
            images=directory(CONVERTED["images"]),
        log:
            "results/logs/convert.log",
        benchmark:
            "results/benchmarks/convert.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            group=config["instances"]["group"],
            boundary=config["instances"]["boundary"],
            code=script_code("convert"),
        script:
            "../scripts/convert.py"


rule manifest:
    input:
        dataset=dataset_inputs(),
        fingerprint=RAW_FINGERPRINT,
    output:
        **manifest_outputs(),
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


rule preprocess:
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
        format=FORMAT,
        classes=CLASSES,
        ignore=IGNORE,
        regions=config["regions"],
        code=script_code("preprocess"),
    script:
        "../scripts/preprocess.py"
