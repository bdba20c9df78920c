rule analyze:
    input:
        notebook="notebooks/analyze.ipynb",
        manifest=rules.prepare_data.output.manifest,
        test=rules.prepare_data.output.test,
        predictions=rules.train.output.predictions,
    output:
        evaluation="results/runs/{run}/seed{seed}/analysis/evaluation.json",
        confusion="results/runs/{run}/seed{seed}/analysis/figures/confusion_matrix.png",
    log:
        notebook="logs/analyze/{run}/seed{seed}.ipynb",
        stdout="logs/analyze/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/analyze/{run}/seed{seed}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        notebook=lambda wc, input, output: as_json(
            {
                "data_dir": str(Path(input.manifest).parent),
                "run_dir": str(Path(input.predictions).parent),
                "out_dir": str(Path(output.evaluation).parent),
                "run": wc.run,
                "seed": int(wc.seed),
                "options": config["analysis"],
            }
        ),
        code=code_hash("metrics", "plots", "cache", "report"),
    shell:
        notebook_command()
