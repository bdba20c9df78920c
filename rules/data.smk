rule prepare_data:
    input:
        notebook="notebooks/prepare_data.ipynb",
    output:
        manifest=f"{DATA_DIR}/manifest.json",
        train=f"{DATA_DIR}/train.npz",
        test=f"{DATA_DIR}/test.npz",
    log:
        notebook="logs/prepare_data/prepare_data.ipynb",
        stdout="logs/prepare_data/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        "../envs/data.yaml"
    threads: 4
    params:
        notebook=lambda wc, output: as_json(
            {
                "dataset": config["dataset"],
                "out_dir": str(Path(output.manifest).parent),
            }
        ),
        code=code_hash("prepare", "cache", "demo", "plots"),
    shell:
        notebook_command()
