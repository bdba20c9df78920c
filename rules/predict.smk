# `snakemake predict`: classify new images (config `predict:`) with a trained run's portable
# model. Which run is "best" is known only after training, so the step receives every candidate
# run's metrics and portable model, chooses itself and records the choice in summary.json.


rule predict:
    input:
        notebook=workflow_path("notebooks/predict.ipynb"),
        runs=predict_inputs,
    output:
        **files.outputs("predict", PREDICT_DIR),
    log:
        **logs("predict", "predict"),
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/predict.tsv"
    conda:
        "../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        runtime=limit("predict", "runtime"),
        mem_mb=limit("predict", "mem_mb"),
    params:
        notebook=predict_params,
        code=code_hash("predict.ipynb", "labbook.gpus"),
        images=predict_images_hash,
    shell:
        on_own_gpu(notebook_command())
