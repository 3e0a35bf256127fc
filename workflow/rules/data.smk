# Raw data -> validated manifest -> arrays at each input size, for every data format
# (plexus.stages.data); the subject-grouped folds are in folds.smk. Each image set (train,
# test) has its own raw fingerprint, manifest job and arrays: a change to the test images
# reruns manifest_test and preprocess of part test only, never what the training side reads;
# a labelled test set's masks have their own too (test_masks), read by the heldout rule alone.


if config["data"]["synthetic"]["enabled"]:

    rule synthesize:
        output:
            **with_folders(*runs.synthetic_outputs(config)),
            fingerprint_train=runs.RAW_FINGERPRINTS["train"],
            fingerprint_test=runs.RAW_FINGERPRINTS["test"],
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
            parts=RAW_PARTS,
            code=script_code("synthesize"),
        script:
            "../scripts/synthesize.py"


if FORMAT in runs.CONVERTED_FORMATS:

    # a layout of its own -> a sample sheet, one job per image set: DSB2018's folders of instance
    # masks (targets, label maps), or 3-D volumes cut into 2-D slices (and the index of the cases)
    rule convert:
        input:
            **runs.converted_inputs(config, "train"),
            fingerprint=runs.RAW_FINGERPRINTS["train"],
        output:
            **with_folders(*runs.converted_outputs(config, "train")),
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
            part="train",
            format=FORMAT,
            raw=RAW,
            settings=runs.conversion_settings(config, "train"),
            code=script_code("convert"),
        script:
            "../scripts/convert.py"

    rule convert_test:
        input:
            **runs.converted_inputs(config, "test"),
            fingerprint=runs.RAW_FINGERPRINTS["test"],
        output:
            **with_folders(*runs.converted_outputs(config, "test")),
        log:
            "results/logs/convert_test.log",
        benchmark:
            "results/benchmarks/convert_test.tsv"
        conda:
            "../../envs/plexus.yaml"
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            part="test",
            format=FORMAT,
            raw=RAW,
            settings=runs.conversion_settings(config, "test"),
            code=script_code("convert"),
        script:
            "../scripts/convert.py"


# the training images: train.csv, summary.json (channels, depths, counts) and the format's files
rule manifest:
    input:
        dataset=runs.dataset_inputs(config, "train"),
        fingerprint=runs.RAW_FINGERPRINTS["train"],
    output:
        **runs.manifest_outputs(config, "train"),
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
        part="train",
        data=runs.manifest_data(config),
        classes=CLASSES,
        ignore=IGNORE,
        code=script_code("manifest"),
    script:
        "../scripts/manifest.py"


# the test images, checked against the training side (channels, ids): test.csv
rule manifest_test:
    input:
        dataset=runs.dataset_inputs(config, "test"),
        fingerprint=runs.RAW_FINGERPRINTS["test"],
        train="results/manifest/train.csv",
        summary="results/manifest/summary.json",
    output:
        **runs.manifest_outputs(config, "test"),
    log:
        "results/logs/manifest_test.log",
    benchmark:
        "results/benchmarks/manifest_test.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        part="test",
        data=runs.manifest_data(config),
        classes=CLASSES,
        ignore=IGNORE,
        code=script_code("manifest"),
    script:
        "../scripts/manifest.py"


if config["data"]["test_masks"]:

    # a labelled test set's masks, checked and written apart; their own raw fingerprint, so labelling
    # the test set or editing a test mask reruns this job and heldout, never a prediction
    rule test_masks:
        input:
            dataset=runs.dataset_inputs(config, "test"),
            fingerprint=runs.TEST_MASKS_FINGERPRINT,
            test="results/manifest/test.csv",
            summary="results/manifest/summary.json",
        output:
            test_masks=runs.TEST_MASKS,
        log:
            "results/logs/test_masks.log",
        benchmark:
            "results/benchmarks/test_masks.tsv"
        conda:
            "../../envs/plexus.yaml"
        threads: 2
        resources:
            runtime=light_runtime,
            mem_mb=light_mem_mb,
        params:
            part="test_masks",
            data=config["data"],
            classes=CLASSES,
            ignore=IGNORE,
            code=script_code("manifest"),
        script:
            "../scripts/manifest.py"


# one image set's arrays at one input size (the test images: no masks, no class settings)
rule preprocess:
    input:
        manifest="results/manifest/{part}.csv",
        summary="results/manifest/summary.json",
    output:
        "results/preprocessed/{size}/{part}.npz",
    log:
        "results/logs/preprocess/{size}/{part}.log",
    benchmark:
        "results/benchmarks/preprocess/{size}/{part}.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        classes=lambda wildcards: CLASSES if wildcards.part == "train" else None,
        ignore=lambda wildcards: IGNORE if wildcards.part == "train" else None,
        regions=lambda wildcards: (
            config["regions"] if wildcards.part == "train" else None
        ),
        code=script_code("preprocess"),
    script:
        "../scripts/preprocess.py"
