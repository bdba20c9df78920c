# One analysis per training job, beside it; its figures are registered for `snakemake --report`.
rule analyze:
    input:
        notebook=workflow_path("notebooks/analyze.ipynb"),
        manifest=rules.prepare_data.output.manifest,
        test=rules.prepare_data.output.test,
        predictions=rules.train.output.predictions,
    output:
        **{name: analysis_figure(name) for name in book.ANALYSIS_FIGURES},
        evaluation=f"{ANALYSIS_DIR}/evaluation.json",
        provenance=f"{ANALYSIS_DIR}/provenance.json",
    log:
        notebook=f"{EXPERIMENT_DIR}/logs/analyze/{{run}}/seed{{seed}}.ipynb",
        stdout=f"{EXPERIMENT_DIR}/logs/analyze/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{EXPERIMENT_DIR}/benchmarks/analyze/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        runtime=limit("analyze", "runtime"),
        mem_mb=limit("analyze", "mem_mb"),
    params:
        notebook=analysis_params,
        code=code_hash("metrics", "plots", "cache", "report"),
    shell:
        notebook_command()
