# Raw data -> validated manifest -> subject-grouped folds -> arrays at each input size.


if config["data"]["synthetic"]["enabled"]:

    rule synthesize:
        output:
            train=directory(f"{RAW}/train"),
            test=directory(f"{RAW}/test"),
        log:
            "results/logs/synthesize.log",
        conda:
            "../../envs/plexus.yaml"
        params:
            settings=synthetic_settings(),
            code=code_version("synthesize"),
        script:
            "../scripts/synthesize.py"


rule ingest:
    input:
        raw_folders(),
    output:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
        masks="results/manifest/train_masks.csv",
    log:
        "results/logs/ingest.log",
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=code_version("ingest"),
    script:
        "../scripts/ingest.py"


rule folds:
    input:
        "results/manifest/train.csv",
    output:
        "results/splits/folds.csv",
    log:
        "results/logs/folds.log",
    conda:
        "../../envs/plexus.yaml"
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        n_folds=config["cv"]["n_folds"],
        seed=config["cv"]["seed"],
        code=code_version("folds"),
    script:
        "../scripts/folds.py"


rule preprocess:
    input:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
    output:
        train="results/preprocessed/{size}/train.npz",
        test="results/preprocessed/{size}/test.npz",
    log:
        "results/logs/preprocess/{size}.log",
    conda:
        "../../envs/plexus.yaml"
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    params:
        code=code_version("preprocess"),
    script:
        "../scripts/preprocess.py"
