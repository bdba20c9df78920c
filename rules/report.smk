# The lab report, the experiment's entry in the lab book, the lab book itself, and the
# workflow-level text of Snakemake's own report (`snakemake --report report.zip`).
report: "report/workflow.rst"


rule report:
    input:
        **rules.prepare_data.output,
        notebook=workflow_path("notebooks/report.ipynb"),
        metrics=each_job(rules.train.output.metrics),
        predictions=each_job(rules.train.output.predictions),
        train_provenance=each_job(rules.train.output.provenance),
        analyses=[each_job(path) for path in rules.analyze.output],
    output:
        **{name: path for name, path in REPORT_OUTPUTS.items() if name != "html"},
        html=report(
            REPORT_OUTPUTS["html"],
            caption="report/lab_report.rst",
            category="Lab report",
        ),
    log:
        **logs("report", "report"),
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        runtime=limit("report", "runtime"),
        mem_mb=limit("report", "mem_mb"),
    params:
        notebook=params_file(
            {
                "experiment": PLAN.experiment,
                "title": PLAN.config["title"],
                "objective": PLAN.config["objective"],
                "data_dir": DATA_DIR,
                "runs": [
                    job.to_dict() for job in PLAN.job_records(RUN_DIR, ANALYSIS_DIR)
                ],
                "config": PLAN.config,
                "logs": step_notebooks(),
                "tensorboard_dir": f"{EXPERIMENT_DIR}/runs",
                "provenance_path": REPORT_OUTPUTS["provenance"],
                "book_entry_path": REPORT_OUTPUTS["book_entry"],
            }
        ),
        code=code_hash("report.ipynb"),
    shell:
        notebook_command("--html {output.html:q}")
        + " && cp {log.notebook:q} {output.notebook:q}"


rule index:
    input:
        notebook=workflow_path("notebooks/index.ipynb"),
        entries=book_entries(),
    output:
        INDEX,
    log:
        **logs("index", "index"),
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        runtime=limit("index", "runtime"),
        mem_mb=limit("index", "mem_mb"),
    params:
        notebook=params_file({"entries": book_entries(), "out": INDEX}),
        code=code_hash("index.ipynb"),
    shell:
        notebook_command()
