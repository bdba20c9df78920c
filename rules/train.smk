rule train:
    input:
        notebook="notebooks/train.ipynb",
        manifest=rules.prepare_data.output.manifest,
        train=rules.prepare_data.output.train,
        test=rules.prepare_data.output.test,
    output:
        model="results/runs/{run}/seed{seed}/model.pt",
        # The portable model (labbook/export.py): loads with torch alone; predict uses it.
        program="results/runs/{run}/seed{seed}/model.pt2",
        program_info="results/runs/{run}/seed{seed}/model.json",
        metrics="results/runs/{run}/seed{seed}/metrics.json",
        predictions="results/runs/{run}/seed{seed}/predictions.npz",
        provenance="results/runs/{run}/seed{seed}/provenance.json",
    log:
        notebook="logs/train/{run}/seed{seed}.ipynb",
        stdout="logs/train/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{run}/seed{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
    params:
        notebook=lambda wc: as_json(
            {
                "data_dir": DATA_DIR,
                "out_dir": run_dir(wc.run, wc.seed),
                "run": wc.run,
                "seed": int(wc.seed),
                "options": train_options(wc.run),
            }
        ),
        code=code_hash("train", "models", "cache", "plots", "export"),
    shell:
        on_own_gpu(notebook_command())
