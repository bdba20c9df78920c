# The data step. Its folder is keyed by the dataset spec, so experiments with the same spec share
# it. The source fingerprint is computed here, when the job graph is built: a change of the
# dataset's files then reruns data prep and what follows (Snakemake records params).


rule prepare_data:
    input:
        notebook=workflow_path("notebooks/prepare_data.ipynb"),
    output:
        **files.outputs("prepare_data", DATA_DIR),
    log:
        notebook=f"{DATA_DIR}/logs/prepare_data.ipynb",
        stdout=f"{DATA_DIR}/logs/prepare_data.log",
    benchmark:
        f"{DATA_DIR}/logs/prepare_data.benchmark.tsv"
    # A download (CIFAR-10) is retried, so a dropped connection does not end the run; else
    # None leaves it to --retries.
    retries: PLAN.data_retries()
    conda:
        "../envs/data.yaml"
    threads: 4
    resources:
        runtime=limit("prepare_data", "runtime"),
        mem_mb=limit("prepare_data", "mem_mb"),
    params:
        notebook=params_file({"dataset": PLAN.dataset, "out_dir": DATA_DIR}),
        code=code_hash("prepare_data.ipynb"),
        # The source files' content: new, removed or edited images rerun data prep and what
        # follows; MD5s are remembered by size and mtime, so touching a file reruns nothing.
        source=datasets.fingerprint(PLAN.dataset, digest_cache=DIGEST_CACHE),
    shell:
        notebook_command()
