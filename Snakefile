# labbook: a book of experiments, each a workflow of papermill notebooks.
#   snakemake --cores 4                  run the experiment in config.yaml (the venv's python)
#   snakemake --use-conda --cores 4      each step in its own pinned conda env (envs/)
#   snakemake --profile profiles/slurm   submit it to a Slurm cluster
# Outputs: results/<experiment>/ (runs, report), results/data/ (shared), results/index.html.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


rule all:
    default_target: True
    input:
        rules.report.output.html,
        INDEX,


onsuccess:
    print(f"\nThe report: {Path(rules.report.output.html).resolve()}")
    print(f"The lab book: {Path(INDEX).resolve()}")
