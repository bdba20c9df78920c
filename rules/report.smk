def report_runs():
    """What the report needs to know of each training job: where its files are, its target."""
    runs = []
    for run, seed in run_seeds():
        spec = config["runs"][run]
        runs.append(
            {
                "name": run,
                "seed": seed,
                "train_dir": run_dir(run, seed),
                "analysis_dir": f"{run_dir(run, seed)}/analysis",
                "target_accuracy": spec.get("target_accuracy"),
                "hypothesis": spec.get("hypothesis", ""),
            }
        )
    return runs


def step_notebooks():
    """Executed notebooks of every step, relative to results/ where the report lives."""
    paths = ["../logs/prepare_data/prepare_data.ipynb"]
    for run, seed in run_seeds():
        paths += [
            f"../logs/train/{run}/seed{seed}.ipynb",
            f"../logs/analyze/{run}/seed{seed}.ipynb",
        ]
    return paths


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
