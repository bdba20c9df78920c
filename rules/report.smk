# The lab report, the experiment's entry in the lab book, the lab book itself, and the
# workflow-level text of Snakemake's own report (`snakemake --report report.zip`).
report: "report/workflow.rst"


rule report:
    input:
        notebook=workflow_path("notebooks/report.ipynb"),
        manifest=rules.prepare_data.output.manifest,
        train=rules.prepare_data.output.train,
        metrics=each_job(rules.train.output.metrics),
        train_provenance=each_job(rules.train.output.provenance),
        analyses=[each_job(path) for name, path in rules.analyze.output.items()],
    output:
        notebook=f"{EXPERIMENT_DIR}/report.ipynb",
        html=report(
            f"{EXPERIMENT_DIR}/report.html",
            caption="report/lab_report.rst",
            category="Lab report",
        ),
        provenance=REPORT_PROVENANCE,
        book_entry=BOOK_ENTRY,
    log:
        notebook=f"{EXPERIMENT_DIR}/logs/report/report.ipynb",
        stdout=f"{EXPERIMENT_DIR}/logs/report/report.log",
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        runtime=limit("report", "runtime"),
        mem_mb=limit("report", "mem_mb"),
    params:
        notebook=as_json(
            {
                "experiment": EXPERIMENT,
                "title": config["title"],
                "objective": config["objective"],
                "data_dir": DATA_DIR,
                "runs": report_runs(),
                "config": config,
                "logs": step_notebooks(),
                "tensorboard_dir": f"{EXPERIMENT_DIR}/runs",
                "provenance_path": REPORT_PROVENANCE,
                "book_entry_path": BOOK_ENTRY,
            }
        ),
        code=code_hash("report", "plots", "cache", "book"),
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
        notebook=f"{EXPERIMENT_DIR}/logs/index/index.ipynb",
        stdout=f"{EXPERIMENT_DIR}/logs/index/index.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        runtime=limit("index", "runtime"),
        mem_mb=limit("index", "mem_mb"),
    params:
        notebook=as_json({"entries": book_entries(), "out": INDEX}),
        code=code_hash("book", "cache"),
    shell:
        notebook_command()
