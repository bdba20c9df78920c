# One analysis per training job, beside it; its figures are registered for `snakemake --report`.


rule analyze:
    input:
        notebook=workflow_path("notebooks/analyze.ipynb"),
        manifest=rules.prepare_data.output.manifest,
        test_images=rules.prepare_data.output.test_images,
        test_labels=rules.prepare_data.output.test_labels,
        predictions=rules.train.output.predictions,
    output:
        **{
            name: analysis_figure(name, path) if name in files.FIGURES else path
            for name, path in files.outputs("analyze", ANALYSIS_DIR).items()
        },
    log:
        **logs("analyze"),
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
        code=code_hash("analyze.ipynb"),
    shell:
        notebook_command()
