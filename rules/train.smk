rule train:
    input:
        notebook=workflow_path("notebooks/train.ipynb"),
        manifest=rules.prepare_data.output.manifest,
        train=rules.prepare_data.output.train,
        test=rules.prepare_data.output.test,
    output:
        model=f"{RUN_DIR}/model.pt",
        # The portable model (labbook/export.py): loads with torch alone; predict uses it.
        program=f"{RUN_DIR}/model.pt2",
        program_info=f"{RUN_DIR}/model.json",
        metrics=f"{RUN_DIR}/metrics.json",
        predictions=f"{RUN_DIR}/predictions.npz",
        provenance=f"{RUN_DIR}/provenance.json",
    log:
        notebook=f"{EXPERIMENT_DIR}/logs/train/{{run}}/seed{{seed}}.ipynb",
        stdout=f"{EXPERIMENT_DIR}/logs/train/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/train/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
        runtime=limit("train", "runtime"),
        mem_mb=limit("train", "mem_mb"),
    params:
        notebook=train_params,
        code=code_hash(
            "train", "models", "options", "cache", "plots", "export", "gpustats"
        ),
        # A user's own model file (model: file.py:Name): editing it reruns this run only.
        model_file=model_file_hash,
    shell:
        on_own_gpu(notebook_command())
