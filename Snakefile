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


# Every file a user relies on is a target, not only the report and the lab book: one that goes
# missing (deleted, or removed by Snakemake after its job failed) is made again.
rule all:
    default_target: True
    input:
        rules.report.output,
        INDEX,
        rules.prepare_data.output,
        [each_job(path) for path in rules.train.output],
        [each_job(path) for path in rules.analyze.output],


onsuccess:
    print(f"\nThe report: {Path(rules.report.output.html).resolve()}")
    print(f"The lab book: {Path(INDEX).resolve()}")
