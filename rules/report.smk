# The lab report, and the workflow-level text of Snakemake's own report
# (`snakemake --report results/snakemake-report.zip`).
report: "report/workflow.rst"


rule report:
    input:
        notebook="notebooks/report.ipynb",
        manifest=rules.prepare_data.output.manifest,
        train=rules.prepare_data.output.train,
        metrics=[f"{run_dir(r, s)}/metrics.json" for r, s in run_seeds()],
        train_provenance=[f"{run_dir(r, s)}/provenance.json" for r, s in run_seeds()],
        evaluations=[
            f"{run_dir(r, s)}/analysis/evaluation.json" for r, s in run_seeds()
        ],
        analysis_provenance=[
            f"{run_dir(r, s)}/analysis/provenance.json" for r, s in run_seeds()
        ],
        figures=[
            f"{run_dir(r, s)}/analysis/figures/{figure}.png"
            for r, s in run_seeds()
            for figure in ("confusion_matrix", "roc", "reliability", "mistakes")
        ],
    output:
        notebook="results/report.ipynb",
        html=report(
            "results/report.html",
            caption="report/lab_report.rst",
            category="Lab report",
        ),
        provenance="results/report.provenance.json",  # also in params: keep in step
    log:
        notebook="logs/report/report.ipynb",
        stdout="logs/report/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        notebook=as_json(
            {
                "title": config["title"],
                "objective": config["objective"],
                "data_dir": DATA_DIR,
                "runs": report_runs(),
                "config": config,
                "logs": step_notebooks(),
                "tensorboard_dir": "results/runs",
                "provenance_path": "results/report.provenance.json",
            }
        ),
        code=code_hash("report", "plots", "cache"),
    shell:
        notebook_command("--html {output.html}")
        + " && cp {log.notebook} {output.notebook}"
