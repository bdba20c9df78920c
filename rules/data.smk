# The data step's source fingerprint is computed here, when the job graph is built: a change of
# the dataset's files then reruns data prep and what follows (Snakemake records params).
# Its folder is keyed by the dataset spec, so experiments with the same spec share it.
from labbook.prepare import source_fingerprint


rule prepare_data:
    input:
        notebook=workflow_path("notebooks/prepare_data.ipynb"),
    output:
        manifest=f"{DATA_DIR}/manifest.json",
        train=f"{DATA_DIR}/train.npz",
        test=f"{DATA_DIR}/test.npz",
    log:
        notebook=f"{DATA_DIR}/logs/prepare_data.ipynb",
        stdout=f"{DATA_DIR}/logs/prepare_data.log",
    benchmark:
        f"{DATA_DIR}/logs/prepare_data.benchmark.tsv"
    # A download (CIFAR-10) is retried, so a dropped connection does not end the run; else
    # None leaves it to --retries.
    retries: limits.data_retries(config["dataset"])
    conda:
        "../envs/data.yaml"
    threads: 4
    resources:
        runtime=limit("prepare_data", "runtime"),
        mem_mb=limit("prepare_data", "mem_mb"),
    params:
        notebook=as_json({"dataset": config["dataset"], "out_dir": DATA_DIR}),
        code=code_hash(
            "prepare", "sources", "cache", "demo", "cifar10", "imagefolder", "plots"
        ),
        # The source files' content: new, removed or edited images rerun data prep and what
        # follows; MD5s are remembered by size and mtime, so touching a file reruns nothing.
        source=source_fingerprint(config["dataset"], digest_cache=DIGEST_CACHE),
    shell:
        notebook_command()
