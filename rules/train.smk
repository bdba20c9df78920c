# One training job per run and seed; its folder holds the model, the portable model (loads with
# torch alone; predict uses it), metrics, test predictions and TensorBoard's events.


rule train:
    input:
        **rules.prepare_data.output,
        notebook=workflow_path("notebooks/train.ipynb"),
    output:
        **files.outputs("train", RUN_DIR),
    log:
        **logs("train"),
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/train/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads
    resources:
        gpu=train_gpus,
        runtime=limit("train", "runtime"),
        mem_mb=limit("train", "mem_mb"),
    params:
        notebook=train_params,
        code=code_hash("train.ipynb", "labbook.gpus", "labbook.worker"),
        model_file=model_file_hash,
    shell:
        on_own_gpu(notebook_command(), count="{resources.gpu}")
