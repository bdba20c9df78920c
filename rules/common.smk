# Helpers shared by the rules. Every value a step uses goes into its rule's `params:` (Snakemake
# records params, not config), so changing a value reruns exactly the steps that use it.
# A params function may take `wildcards` only: Snakemake does not record the value of one that
# takes input, output, threads or resources ("derived"), so a change there would rerun nothing.
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

# The workflow's own files (notebooks, library) are found from this file, not from the working
# directory, so `--directory elsewhere` and use as a Snakemake `module` work.
WORKFLOW_DIR = Path(workflow.current_basedir).parent.resolve()
LIBRARY = WORKFLOW_DIR / "scripts" / "labbook"
# Snakemake's own Python imports the library's standard-library layer while building the graph.
sys.path.insert(0, str(LIBRARY.parent))
from labbook import book, limits, options
from labbook.predict import images_fingerprint
from labbook.prepare import check_config, dataset_options


def workflow_path(relative):
    """A file of the workflow, as a path relative to the working directory where it lies below
    it: recorded inputs and shell commands then stay the same when the whole project is copied
    or moved, so nothing reruns for that."""
    path = WORKFLOW_DIR / relative
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# MD5s of dataset and prediction images, remembered by size and mtime (labbook.sources).
DIGEST_CACHE = ".snakemake/labbook/source-md5.json"
EXPERIMENT = config["experiment"]
EXPERIMENT_DIR = f"results/{EXPERIMENT}"
DATA_DIR = f"results/data/{book.dataset_key(config['dataset'])}"
# Sweeps expanded: one run per combination of values, each checked like a run of its own (a
# swept key that is no training option, or a value of the wrong type, stops here naming it).
RUNS, SWEEPS = book.expand_runs(config["runs"])
validate({**config, "runs": RUNS}, "../schemas/config.schema.yaml")
# The dataset's image counts, listed once: the memory check here and every job's limits use them.
DATASET_SIZE = limits.dataset_size(config["dataset"])
# What the schema cannot see (class count, top_k, memory of image_size), before any job runs.
check_config(config, image_count=DATASET_SIZE[0] + DATASET_SIZE[1])
# A user's model file or weights file is named relative to the config's own folder.
CONFIG_FILES = workflow.overwrite_configfiles or workflow.configfiles
CONFIG_DIR = os.path.relpath(Path(CONFIG_FILES[-1]).parent) if CONFIG_FILES else "."


# Runs one notebook: parameters checked against the notebook's `parameters` cell, executed
# notebook kept under logs/ (also on failure), papermill's and the step's output in the .log.
# PYTHONPATH is set here because Snakemake strips it from conda jobs.
def notebook_command(extra=""):
    return (
        f"PYTHONPATH={workflow_path('scripts')} python -m labbook.runner {{input.notebook:q}}"
        f" {{log.notebook:q}} --params {{params.notebook:q}} --threads {{threads}} {extra}"
        " > {log.stdout:q} 2>&1"
    )


# Runs a command on a GPU of its own (labbook/gpus.py): Snakemake's `--resources gpu=N` only
# counts GPUs, this picks which one, through CUDA_VISIBLE_DEVICES. `env` carries the command's
# own VAR=value prefix (PYTHONPATH) through the wrapper, which sets PYTHONPATH for itself too.
def on_own_gpu(command):
    return (
        f"PYTHONPATH={workflow_path('scripts')} python -m labbook.gpus -- env {command}"
    )


# What each job asks a cluster for (labbook/limits.py): `runtime` in minutes and `mem_mb` in MB,
# estimated from the config (a run's own `runtime:`/`mem_mb:` first), times the attempt, so a job
# killed at its limit asks for more when Snakemake retries it. Resources, not params: they change
# where and how long a job runs, not its results.
def limit(step, name):
    def resource(wildcards, threads, attempt):
        run = RUNS[wildcards.run] if step == "train" else None
        # every option, TrainOptions' defaults under what the config says
        values = {**options.defaults(), **train_options(wildcards.run)} if run else None
        images = predict_options()["images"] if step == "predict" else None
        estimate = limits.job(
            step, config["dataset"], DATASET_SIZE, threads, values, run, images
        )
        return attempt * estimate[name]

    return resource


def code_hash(*modules):
    """Hash of the library modules a step runs: editing one reruns the steps that use it."""
    digest = hashlib.sha256()
    for module in ("__init__", "runner", "provenance", *modules):
        digest.update((LIBRARY / f"{module}.py").read_bytes())
    return digest.hexdigest()[:16]


def run_seeds():
    """[(run, seed)] for every training job, in config order (sweeps expanded)."""
    return [
        (run, seed) for run, spec in RUNS.items() for seed in spec.get("seeds", [0])
    ]


def each_job(pattern):
    """One path per training job from a rule's output pattern with {run} and {seed}."""
    return [pattern.format(run=run, seed=seed) for run, seed in run_seeds()]


def as_json(value):
    return json.dumps(value, sort_keys=True)


# Where each step writes: one training job's folder, its analysis, the report, the lab book.
RUN_DIR = f"{EXPERIMENT_DIR}/runs/{{run}}/seed{{seed}}"
ANALYSIS_DIR = f"{RUN_DIR}/analysis"
REPORT_PROVENANCE = f"{EXPERIMENT_DIR}/report.provenance.json"
BOOK_ENTRY = f"{EXPERIMENT_DIR}/book.json"
INDEX = "results/index.html"


def train_options(run):
    """The run's options over `train:` (TrainOptions' defaults fill in the rest, in the step),
    with a model or weights file's path relative to the working directory.
    """
    values = book.training_options(config.get("train", {}), RUNS[run])
    return options.relative_to_workdir(values, CONFIG_DIR)


def check_training_options():
    """Every run's training options against TrainOptions, and its model against the data's image
    size, before any job: an error names the key (`runs.<run>.<key>`)."""
    options.TrainOptions.from_dict(config.get("train", {}), where="train.")
    runs = {
        run: options.TrainOptions.from_dict(train_options(run), where=f"runs.{run}.")
        for run in RUNS
    }
    # The size of the prepared images (CIFAR-10's are 32×32).
    stored_size = dataset_options(config["dataset"]).get("image_size", 32)
    options.check_models(runs, stored_size, ".snakemake/labbook/model-checks.json")


check_training_options()


def train_params(wildcards):
    return as_json(
        {
            "data_dir": DATA_DIR,
            "out_dir": RUN_DIR.format(**wildcards),
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            "options": train_options(wildcards.run),
        }
    )


def model_file_hash(wildcards):
    """A user's own model file (model: file.py:Name): editing it reruns that run only."""
    return options.model_file_hash(train_options(wildcards.run)["model"])


def analysis_figure(name):
    return report(
        f"{ANALYSIS_DIR}/figures/{name}.png",
        caption=f"report/{name}.rst",
        category="Analysis",
        subcategory="{run} seed {seed}",
        labels={
            "run": "{run}",
            "seed": "{seed}",
            "figure": book.ANALYSIS_FIGURES[name],
        },
    )


def analysis_params(wildcards):
    return as_json(
        {
            "data_dir": DATA_DIR,
            "run_dir": RUN_DIR.format(**wildcards),
            "out_dir": ANALYSIS_DIR.format(**wildcards),
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            "options": config["analysis"],
        }
    )


def job_files(run, seed):
    """The files of one training job the report reads, from the rules that write them."""
    wildcards = {"run": run, "seed": seed}
    analysis = rules.analyze.output
    return {
        "metrics": rules.train.output.metrics.format(**wildcards),
        "train_provenance": rules.train.output.provenance.format(**wildcards),
        "evaluation": analysis.evaluation.format(**wildcards),
        "analysis_provenance": analysis.provenance.format(**wildcards),
        "figures": {
            name: getattr(analysis, name).format(**wildcards)
            for name in book.ANALYSIS_FIGURES
        },
    }


def report_runs():
    """What the report needs of each training job: its files, its target, its sweep."""
    return [
        {
            "name": run,
            "seed": seed,
            "target_accuracy": RUNS[run].get("target_accuracy"),
            "hypothesis": RUNS[run].get("hypothesis", ""),
            "sweep": SWEEPS.get(run),
            **job_files(run, seed),
        }
        for run, seed in run_seeds()
    ]


def step_notebooks():
    """Executed notebooks of every step, relative to the report's folder (appendix links)."""
    paths = [rules.prepare_data.log.notebook]
    for run, seed in run_seeds():
        paths += [
            rules.train.log.notebook.format(run=run, seed=seed),
            rules.analyze.log.notebook.format(run=run, seed=seed),
        ]
    return [os.path.relpath(path, EXPERIMENT_DIR) for path in paths]


def book_entries():
    """Every experiment's book.json on disk, and this experiment's: the index lists them all,
    and reruns when any of them is rebuilt."""
    on_disk = {str(path) for path in Path("results").glob("*/book.json")}
    return sorted(on_disk | {BOOK_ENTRY})


wildcard_constraints:
    run="|".join(re.escape(run) for run in RUNS),
    seed=r"\d+",


# ---------------------------------------------------------------- predict (rules/predict.smk)
PREDICT_DIR = f"{EXPERIMENT_DIR}/predict"


def predict_options():
    """The config's predict: block (schema defaults filled in); an error naming what is missing."""
    if "predict" not in config:
        raise ValueError(
            "`snakemake predict` needs a predict: block in the config, e.g.\n"
            "predict:\n  images: path/to/new/images"
        )
    return config["predict"]


def predict_candidates():
    """[{run, seed, dir}] the step chooses from: every training job (run: best), the named run's
    seeds, or every run a named sweep expands to."""
    run = predict_options()["run"]
    swept = [name for name, sweep in SWEEPS.items() if sweep["run"] == run]
    wanted = RUNS if run == "best" else [run] if run in RUNS else swept
    if not wanted:
        raise ValueError(
            f"predict: run {run!r} is not a run of this config; runs: {sorted(config['runs'])}"
        )
    return [
        {"run": name, "seed": seed, "dir": RUN_DIR.format(run=name, seed=seed)}
        for name, seed in run_seeds()
        if name in wanted
    ]


def predict_inputs(wildcards):
    """Each candidate's metrics and portable model, from the train rule's outputs."""
    train = rules.train.output
    return [
        path.format(run=candidate["run"], seed=candidate["seed"])
        for candidate in predict_candidates()
        for path in (train.metrics, train.program, train.program_info)
    ]


def predict_images_hash(wildcards):
    """The images' names and content: new, removed or edited images rerun the step."""
    return images_fingerprint(predict_options()["images"], digest_cache=DIGEST_CACHE)


def predict_params(wildcards):
    options = predict_options()
    images = options["images"]
    return as_json(
        {
            "images": [images] if isinstance(images, str) else images,
            "candidates": predict_candidates(),
            # A named sweep: the best of its runs.
            "run": options["run"] if options["run"] in RUNS else "best",
            "top_k": options["top_k"],
            "batch_size": options["batch_size"],
            "device": options["device"],
            "out_dir": PREDICT_DIR,
        }
    )
