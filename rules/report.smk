rule report:
    input:
        notebook="notebooks/report.ipynb",
        manifest=rules.prepare_data.output.manifest,
        train=rules.prepare_data.output.train,
        metrics=[f"{run_dir(r, s)}/metrics.json" for r, s in run_seeds()],
        evaluations=[
            f"{run_dir(r, s)}/analysis/evaluation.json" for r, s in run_seeds()
        ],
    output:
        notebook="results/report.ipynb",
        html="results/report.html",
    log:
        notebook="logs/report/report.ipynb",
        stdout="logs/report/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        notebook=lambda wc, input: as_json(
            {
                "title": config["title"],
                "objective": config["objective"],
                "data_dir": str(Path(input.manifest).parent),
                "runs": report_runs(),
                "config": config,
                "logs": step_notebooks(),
                "tensorboard_dir": "results/runs",
            }
        ),
        code=code_hash("report", "plots", "cache"),
    shell:
        notebook_command("--html {output.html}")
        + " && cp {log.notebook} {output.notebook}"
