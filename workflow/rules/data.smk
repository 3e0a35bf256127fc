# Raw data -> validated manifest -> subject-grouped folds -> arrays at each input size.


if config["data"]["synthetic"]["enabled"]:

    rule synthesize:
        output:
            train=directory(f"{RAW}/train"),
            test=directory(f"{RAW}/test"),
        params:
            settings=config["data"]["synthetic"],
            code=code_version("synthesize"),
        log:
            "results/logs/synthesize.log",
        conda:
            "../../envs/plexus.yaml"
        script:
            "../scripts/synthesize.py"


rule ingest:
    input:
        raw_folders(),
    output:
        train="results/manifest/train.csv",
        test="results/manifest/test.csv",
        masks="results/manifest/train_masks.csv",
    params:
        raw_dir=RAW,
        code=code_version("ingest"),
    log:
        "results/logs/ingest.log",
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    conda:
        "../../envs/plexus.yaml"
    script:
        "../scripts/ingest.py"


rule folds:
    input:
        "results/manifest/train.csv",
    output:
        "results/splits/folds.csv",
    params:
        n_folds=config["cv"]["n_folds"],
        seed=config["cv"]["seed"],
        code=code_version("folds"),
    log:
        "results/logs/folds.log",
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    conda:
        "../../envs/plexus.yaml"
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
    params:
        code=code_version("preprocess"),
    threads: 2
    resources:
        runtime=light_runtime,
        mem_mb=light_mem_mb,
    conda:
        "../../envs/plexus.yaml"
    script:
        "../scripts/preprocess.py"
