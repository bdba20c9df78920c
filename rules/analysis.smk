rule analyze:
    input:
        notebook="notebooks/analyze.ipynb",
        manifest=rules.prepare_data.output.manifest,
        test=rules.prepare_data.output.test,
        predictions=rules.train.output.predictions,
    output:
        evaluation="results/runs/{run}/seed{seed}/analysis/evaluation.json",
        provenance="results/runs/{run}/seed{seed}/analysis/provenance.json",
        # Registered for `snakemake --report`: the key figures, one category per run.
        confusion=report(
            "results/runs/{run}/seed{seed}/analysis/figures/confusion_matrix.png",
            caption="report/confusion_matrix.rst",
            category="Analysis",
            subcategory="{run} seed {seed}",
            labels={"run": "{run}", "seed": "{seed}", "figure": "confusion matrix"},
        ),
        roc=report(
            "results/runs/{run}/seed{seed}/analysis/figures/roc.png",
            caption="report/roc.rst",
            category="Analysis",
            subcategory="{run} seed {seed}",
            labels={"run": "{run}", "seed": "{seed}", "figure": "ROC curves"},
        ),
        reliability=report(
            "results/runs/{run}/seed{seed}/analysis/figures/reliability.png",
            caption="report/reliability.rst",
            category="Analysis",
            subcategory="{run} seed {seed}",
            labels={"run": "{run}", "seed": "{seed}", "figure": "reliability"},
        ),
        mistakes=report(
            "results/runs/{run}/seed{seed}/analysis/figures/mistakes.png",
            caption="report/mistakes.rst",
            category="Analysis",
            subcategory="{run} seed {seed}",
            labels={"run": "{run}", "seed": "{seed}", "figure": "confident mistakes"},
        ),
    log:
        notebook="logs/analyze/{run}/seed{seed}.ipynb",
        stdout="logs/analyze/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/analyze/{run}/seed{seed}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        notebook=lambda wc: as_json(
            {
                "data_dir": DATA_DIR,
                "run_dir": run_dir(wc.run, wc.seed),
                "out_dir": f"{run_dir(wc.run, wc.seed)}/analysis",
                "run": wc.run,
                "seed": int(wc.seed),
                "options": config["analysis"],
            }
        ),
        code=code_hash("metrics", "plots", "cache", "report"),
    shell:
        notebook_command()
