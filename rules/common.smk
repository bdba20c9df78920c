# The adapter between the plan (scripts/labbook/plan/: every check and decision made while the job
# graph is built, standard library only) and Snakemake: paths, params helpers, resources,
# wildcard constraints. Every value a step uses goes into its rule's `params:` (Snakemake records
# params, not config), so changing a value reruns exactly the steps that use it. A params
# function takes `wildcards` only: Snakemake does not record one that takes input, output,
# threads or resources ("derived"), so a change there would rerun nothing.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The workflow's own files (notebooks, library) are found from this file, not from the working
# directory, so `--directory elsewhere` and use as a Snakemake `module` work.
WORKFLOW_DIR = Path(workflow.current_basedir).parent.resolve()
LIBRARY = WORKFLOW_DIR / "scripts" / "labbook"
# Snakemake's own Python imports the plan from the checkout (an installed copy may be older).
sys.path.insert(0, str(LIBRARY.parent))
from labbook import strict_yaml
from labbook.plan.config import config_dir, load
from labbook.plan import code, datasets, files, images, options, params

# Snakemake keeps the last of two equal keys in a config file silently: refuse them.
strict_yaml.refuse_duplicate_keys(
    workflow.overwrite_configfiles or workflow.configfiles
)


def check_model(options, stored_size, where):
    """The model checks that need torch (a model on the meta device), where torch is here."""
    from labbook import models

    models.check_options(options, stored_size, where)


PLAN = load(
    config,
    validate=lambda values: validate(values, "../schemas/config.schema.yaml"),
    config_dir=config_dir(workflow.overwrite_configfiles or workflow.configfiles),
    check_model=check_model,
)
RUNS = PLAN.runs


def workflow_path(relative):
    """A file of the workflow, as a path relative to the working directory where it lies below
    it: recorded inputs and shell commands then stay the same when the whole project is copied
    or moved, so nothing reruns for that."""
    path = WORKFLOW_DIR / relative
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# Where each step writes. The rules own their outputs, built from these folders and
# labbook/plan/files.py (the file names, shared with the library).
EXPERIMENT_DIR = f"results/{PLAN.experiment}"
DATA_DIR = f"results/data/{PLAN.dataset_key}"
RUN_DIR = f"{EXPERIMENT_DIR}/runs/{{run}}/seed{{seed}}"
ANALYSIS_DIR = f"{RUN_DIR}/{files.ANALYSIS_FOLDER}"
PREDICT_DIR = f"{EXPERIMENT_DIR}/predict"
INDEX = f"results/{files.INDEX}"
# MD5s of dataset and prediction images, remembered by size and mtime (labbook/plan/sources.py).
DIGEST_CACHE = ".snakemake/labbook/source-md5.json"


def logs(step, name="{run}/seed{seed}"):
    """The executed notebook (kept also when the step fails) and its log."""
    folder = f"{EXPERIMENT_DIR}/logs/{step}/{name}"
    return {"notebook": f"{folder}.ipynb", "stdout": f"{folder}.log"}


def params_file(values):
    """A step's parameters as the path of a file holding them, named by their hash (see
    labbook/plan/params.py: a command line has no room for a big experiment's)."""
    return params.write(values)


# Runs one notebook: parameters checked against the notebook's `parameters` cell, executed
# notebook kept under logs/ (also on failure), papermill's and the step's output in the .log.
# PYTHONPATH is set here because Snakemake strips it from conda jobs.
def notebook_command(extra=""):
    return (
        f"PYTHONPATH={workflow_path('scripts')} python -m labbook.runner {{input.notebook:q}}"
        f" {{log.notebook:q}} --params {{params.notebook:q}} --threads {{threads}} {extra}"
        " > {log.stdout:q} 2>&1"
    )


# Runs a command on GPUs of its own (labbook/gpus.py): Snakemake's `--resources gpu=N` only
# counts GPUs, this picks which ones, through CUDA_VISIBLE_DEVICES. `count`, where given, is how
# many (all or none; e.g. "{resources.gpu}"), else one. `env` carries the command's own
# VAR=value prefix (PYTHONPATH) through the wrapper, which sets PYTHONPATH for itself too.
def on_own_gpu(command, count=None):
    claim = f"--count {count} -- " if count is not None else "-- "
    return f"PYTHONPATH={workflow_path('scripts')} python -m labbook.gpus {claim}env {command}"


# A training job's GPUs: its run's `gpus` (TrainOptions' default 1), one process on each. The
# rule's `resources: gpu=` (what `--resources gpu=K` sums up locally, and Slurm's --gpus) and its
# GPU claim both follow it. Snakemake would silently cut a job's gpu down to K where K is less,
# and then training would start more processes than it has devices: refuse that up front.
def train_gpus(wildcards):
    count = PLAN.all_train_options(wildcards.run)["gpus"]
    cap = workflow.global_resources.get("gpu").value
    if cap is not None and count > cap:
        raise WorkflowError(
            f"run {wildcards.run!r} trains on `gpus: {count}`, but `--resources gpu={cap}`"
            f" allows {cap}: raise gpu to at least {count}, or lower the run's gpus"
        )
    return count


# CPUs per training GPU: a run on N GPUs has N processes, each fed by as many threads as a
# one-GPU run (profiles/slurm asks cpus_per_gpu for the same reason).
TRAIN_THREADS_PER_GPU = 4


def train_threads(wildcards):
    return TRAIN_THREADS_PER_GPU * train_gpus(wildcards)


def code_hash(notebook, *shell_modules):
    """Hash of the library code a step runs, found from its notebook's imports and the
    modules its shell command runs: editing one reruns the steps that use it."""
    return code.code_hash(
        LIBRARY,
        WORKFLOW_DIR / "notebooks" / notebook,
        {"labbook.runner", *shell_modules},
    )


# What each job asks a cluster for (labbook/plan/limits.py): `runtime` in minutes and `mem_mb`
# in MB, times the attempt. Resources, not params: they change where and how long a job runs,
# not its results.
def limit(step, name):
    def resource(wildcards, threads, attempt):
        run = wildcards.run if step == "train" else None
        return PLAN.limits(step, threads, run, attempt)[name]

    return resource


def each_job(pattern):
    """One path per training job from a rule's output pattern with {run} and {seed}."""
    return [pattern.format(run=run, seed=seed) for run, seed in PLAN.jobs]


# ------------------------------------------------------------ train (rules/train.smk)
def train_params(wildcards):
    return params_file(
        {
            "data_dir": DATA_DIR,
            "out_dir": RUN_DIR.format(**wildcards),
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            "options": PLAN.train_options(wildcards.run),
        }
    )


def model_file_hash(wildcards):
    """A user's own model file (model: file.py:Name): editing it reruns that run only."""
    return options.model_file_hash(PLAN.train_options(wildcards.run)["model"])


# ------------------------------------------------------------ analyze (rules/analysis.smk)
def analysis_figure(name, path):
    return report(
        path,
        caption=f"report/{name}.rst",
        category="Analysis",
        subcategory="{run} seed {seed}",
        labels={"run": "{run}", "seed": "{seed}", "figure": files.FIGURES[name]},
    )


def analysis_params(wildcards):
    return params_file(
        {
            "data_dir": DATA_DIR,
            "run_dir": RUN_DIR.format(**wildcards),
            "out_dir": ANALYSIS_DIR.format(**wildcards),
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            "options": PLAN.analysis,
        }
    )


# ------------------------------------------------------------ report and index (rules/report.smk)
def step_notebooks():
    """Executed notebooks of every step, relative to the report's folder (appendix links)."""
    paths = [rules.prepare_data.log.notebook]
    for run, seed in PLAN.jobs:
        paths += [
            rules.train.log.notebook.format(run=run, seed=seed),
            rules.analyze.log.notebook.format(run=run, seed=seed),
        ]
    return [os.path.relpath(path, EXPERIMENT_DIR) for path in paths]


def book_entries():
    """Every experiment's book.json on disk, and this experiment's: the index lists them all,
    and reruns when any of them is rebuilt."""
    on_disk = {
        str(path) for path in Path("results").glob(f"*/{files.REPORT['book_entry']}")
    }
    return sorted(on_disk | {rules.report.output.book_entry})


REPORT_OUTPUTS = files.outputs("report", EXPERIMENT_DIR)


# ------------------------------------------------------------ predict (rules/predict.smk)
def predict_inputs(wildcards):
    """Each candidate's metrics and portable model, from the train rule's outputs."""
    train = rules.train.output
    return [
        path.format(run=candidate["run"], seed=candidate["seed"])
        for candidate in PLAN.predict_candidates(RUN_DIR)
        for path in (train.metrics, train.program, train.program_info)
    ]


def predict_images_hash(wildcards):
    """The images' names and content: new, removed or edited images rerun the step."""
    return images.images_fingerprint(
        PLAN.predict_options()["images"], digest_cache=DIGEST_CACHE
    )


def predict_params(wildcards):
    chosen = PLAN.predict_options()
    given = chosen.pop("images")
    # A named sweep: the best of its runs.
    chosen["run"] = chosen["run"] if chosen["run"] in RUNS else "best"
    return params_file(
        {
            "images": [given] if isinstance(given, str) else given,
            "candidates": PLAN.predict_candidates(RUN_DIR),
            "options": chosen,
            "out_dir": PREDICT_DIR,
        }
    )


wildcard_constraints:
    run="|".join(re.escape(run) for run in RUNS),
    seed=r"\d+",
