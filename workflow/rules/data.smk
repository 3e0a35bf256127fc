# Raw data -> validated manifest -> subject-grouped folds -> arrays at each input size.


if config["data"]["synthetic"]["enabled"]:

    rule synthesize:
        output:
            train=directory(f"{RAW}/train"),
            test=directory(f"{RAW}/test"),
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
            settings=synthetic_settings(),
            code=script_code("synthesize"),
        script:
            "../scripts/synthesize.py"


rule ingest:
    input:
        raw=raw_folders(),
        fingerprint=RAW_FINGERPRINT,
    output:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
        masks="results/manifest/train_masks.csv",
    log:
        "results/logs/ingest.log",
    benchmark:
        "results/benchmarks/ingest.tsv"
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=script_code("ingest"),
    script:
        "../scripts/ingest.py"


rule preprocess:
    input:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
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
        code=script_code("preprocess"),
    script:
        "../scripts/preprocess.py"
