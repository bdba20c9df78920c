# labbook: one experiment as a workflow of papermill notebooks.
#   snakemake --cores 4                  run it here (the venv from requirements.txt)
#   snakemake --use-conda --cores 4      each step in its own pinned conda env (envs/)
#   snakemake --profile profiles/slurm   submit it to a Slurm cluster
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
        "results/report.html",


onsuccess:
    print(f"\nThe report: {Path('results/report.html').resolve()}")
