# The data step's source fingerprint is computed here, when the job graph is built: a change of
# the dataset's files then reruns data prep and what follows (Snakemake records params).
import sys

sys.path.insert(0, str(LIBRARY.parent))
from labbook.prepare import source_fingerprint


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
        notebook=as_json({"dataset": config["dataset"], "out_dir": DATA_DIR}),
        code=code_hash(
            "prepare", "sources", "cache", "demo", "cifar10", "imagefolder", "plots"
        ),
        # The source files' content: new, removed or edited images rerun data prep and what
        # follows; MD5s are remembered by size and mtime, so touching a file reruns nothing.
        source=source_fingerprint(
            config["dataset"], digest_cache=".snakemake/labbook/source-md5.json"
        ),
    shell:
        notebook_command()
