# `snakemake predict`: classify new images (config `predict:`) with a trained run's portable
# model. Which run is "best" is known only after training, so the step receives every candidate
# run's metrics and portable model, chooses itself and records the choice in summary.json.
rule predict:
    input:
        notebook=workflow_path("notebooks/predict.ipynb"),
        runs=predict_inputs,
    output:
        predictions=f"{PREDICT_DIR}/predictions.csv",
        page=f"{PREDICT_DIR}/predictions.html",
        summary=f"{PREDICT_DIR}/summary.json",
        provenance=f"{PREDICT_DIR}/provenance.json",
    log:
        notebook=f"{EXPERIMENT_DIR}/logs/predict/predict.ipynb",
        stdout=f"{EXPERIMENT_DIR}/logs/predict/predict.log",
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
        code=code_hash("predict", "export", "imagefolder", "sources", "train"),
        # The images' names and content: new, removed or edited images rerun the step.
        images=predict_images_hash,
    shell:
        on_own_gpu(notebook_command())
