"""Runs and their jobs: the config's runs with every `sweep:` expanded, each run's training
options, and the training jobs (run × seed) the workflow schedules."""

import itertools
import re

# Keys of a run that are not training options (runtime and mem_mb: what its jobs ask a cluster
# for, see limits.py; not training parameters, so changing them reruns no training).
RUN_KEYS = ("seeds", "target_accuracy", "beats", "hypothesis", "description", "sweep", "runtime", "mem_mb")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
DEFAULT_SEEDS = [0]


def sweep_name(run: str, values: dict) -> str:
    """A path-safe run name for one combination: cifarnet-lr0.01-batch_size128."""
    parts = [run] + [f"{key}{value}" for key, value in values.items()]
    return SAFE_NAME.sub("_", "-".join(parts))


def expand_runs(runs: dict):
    """Runs as the config names them, each `sweep:` expanded into one run per combination of its
    values (the first key varies slowest). Returns ({name: run without sweep},
    {expanded name: {"run": the config's run name, "values": {option: value}}})."""
    expanded, sweeps = {}, {}
    for name, spec in runs.items():
        sweep = spec.get("sweep")
        if not sweep:
            expanded[name] = dict(spec)
            continue
        base = {k: v for k, v in spec.items() if k != "sweep"}
        for combination in itertools.product(*sweep.values()):
            values = dict(zip(sweep, combination, strict=True))
            new_name = sweep_name(name, values)
            if new_name in runs or new_name in expanded:
                raise ValueError(
                    f"run {name!r}: its sweep combination {values} is named {new_name!r}, "
                    "which another run already has; rename one of them"
                )
            expanded[new_name] = {**base, **values}
            sweeps[new_name] = {"run": name, "values": values}
    return expanded, sweeps


def training_options(defaults: dict, run: dict) -> dict:
    """A run's training options: the `train:` defaults with the run's own values on top."""
    return {**defaults, **{k: v for k, v in run.items() if k not in RUN_KEYS}}


def jobs(runs: dict) -> list[tuple[str, int]]:
    """[(run, seed)] for every training job, in config order (sweeps expanded)."""
    return [(run, seed) for run, spec in runs.items() for seed in spec.get("seeds", DEFAULT_SEEDS)]
