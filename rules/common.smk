# Helpers shared by the rules. Every value a step uses goes into its rule's `params:` (Snakemake
# records params, not config), so changing a value reruns exactly the steps that use it.
# A params function may take `wildcards` only: Snakemake does not record the value of one that
# takes input, output, threads or resources ("derived"), so a change there would rerun nothing.
import hashlib
import json
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

LIBRARY = Path(workflow.basedir) / "scripts" / "labbook"
sys.path.insert(0, str(LIBRARY.parent))
from labbook.prepare import check_config

# What the schema cannot see (class count, top_k, memory of image_size), before any job runs.
check_config(config)

DATA_DIR = f"results/data/{config['dataset']['name']}"
RUN_KEYS = (
    "seeds",
    "target_accuracy",
    "hypothesis",
    "description",
)  # not training options


# Runs one notebook: parameters checked against the notebook's `parameters` cell, executed
# notebook kept under logs/ (also on failure), papermill's and the step's output in the .log.
# PYTHONPATH is set here because Snakemake strips it from conda jobs.
def notebook_command(extra=""):
    return (
        f"PYTHONPATH={LIBRARY.parent} python -m labbook.runner {{input.notebook}} {{log.notebook}}"
        f" --params {{params.notebook:q}} --threads {{threads}} {extra} > {{log.stdout}} 2>&1"
    )


# Runs a command on a GPU of its own (labbook/gpus.py): Snakemake's `--resources gpu=N` only
# counts GPUs, this picks which one, through CUDA_VISIBLE_DEVICES. `env` carries the command's
# own VAR=value prefix (PYTHONPATH) through the wrapper, which sets PYTHONPATH for itself too.
def on_own_gpu(command):
    return f"PYTHONPATH={LIBRARY.parent} python -m labbook.gpus -- env {command}"


def code_hash(*modules):
    """Hash of the library modules a step runs: editing one reruns the steps that use it."""
    digest = hashlib.sha256()
    for module in ("__init__", "runner", "provenance", *modules):
        digest.update((LIBRARY / f"{module}.py").read_bytes())
    return digest.hexdigest()[:16]


def run_seeds():
    """[(run, seed)] for every training job, in config order."""
    return [
        (run, seed)
        for run, spec in config["runs"].items()
        for seed in spec.get("seeds", [0])
    ]


def train_options(run):
    """The run's training options: the `train:` defaults with the run's own values on top."""
    spec = {k: v for k, v in config["runs"][run].items() if k not in RUN_KEYS}
    return {**config["train"], **spec}


def run_dir(run, seed):
    return f"results/runs/{run}/seed{seed}"


def as_json(value):
    return json.dumps(value, sort_keys=True)


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


wildcard_constraints:
    run="|".join(config["runs"]),
    seed=r"\d+",
