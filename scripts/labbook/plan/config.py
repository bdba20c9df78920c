"""Load and check a config into the plan of one experiment: the one entry point the workflow
calls while it builds the job graph."""

import os
from dataclasses import dataclass
from pathlib import Path

from . import checks, datasets, limits, runs
from .options import AnalysisOptions, PredictOptions, TrainOptions, check_models, relative_to_workdir
from .record import JobRecord

# What passed the model checks (options.check_models), remembered between graph builds.
MODEL_CHECKS = ".snakemake/labbook/model-checks.json"


@dataclass
class Plan:
    config: dict  # as validated, schema defaults filled in
    config_dir: str  # the config file's folder: a model or weights file is relative to it
    runs: dict  # {run: its config entry}, sweeps expanded
    sweeps: dict  # {expanded run: {"run": the config's run, "values": {option: value}}}
    dataset_size: tuple  # (training images, test images, stored side)

    @property
    def analysis(self) -> dict:
        """The analysis options, every key (load fills AnalysisOptions' defaults in)."""
        return self.config["analysis"]

    @property
    def experiment(self) -> str:
        return self.config["experiment"]

    @property
    def dataset(self) -> dict:
        return self.config["dataset"]

    @property
    def dataset_key(self) -> str:
        return datasets.key(self.dataset)

    @property
    def jobs(self) -> list[tuple[str, int]]:
        return runs.jobs(self.runs)

    def train_options(self, run: str) -> dict:
        """The run's options over `train:` (TrainOptions' defaults fill in the rest, in the
        step), with a model or weights file's path relative to the working directory."""
        values = runs.training_options(self.config.get("train", {}), self.runs[run])
        return relative_to_workdir(values, self.config_dir)

    def all_train_options(self, run: str) -> dict:
        """The run's options with TrainOptions' defaults filled in: every option's value."""
        return {**TrainOptions.defaults(), **self.train_options(run)}

    def limits(self, step: str, threads: int = 1, run: str | None = None, attempt: int = 1) -> dict:
        """{"runtime": minutes, "mem_mb": MB} one job of a step asks a cluster for, times the
        attempt: a job killed at its limit asks for more when Snakemake retries it."""
        options = self.all_train_options(run) if step == "train" else None
        images = self.predict_options()["images"] if step == "predict" else None
        entry = self.runs[run] if step == "train" else None
        estimate = limits.job(step, self.dataset, self.dataset_size, threads, options, entry, images)
        return {name: attempt * value for name, value in estimate.items()}

    def data_retries(self) -> int | None:
        return datasets.retries(self.dataset)

    def job_records(self, run_dir: str, analysis_dir: str) -> list[JobRecord]:
        """The report's record of every training job; run_dir and analysis_dir are the rules'
        folder patterns with {run} and {seed}."""
        return [
            JobRecord(
                name=run,
                seed=seed,
                run_dir=run_dir.format(run=run, seed=seed),
                analysis_dir=analysis_dir.format(run=run, seed=seed),
                target_accuracy=self.runs[run].get("target_accuracy"),
                hypothesis=self.runs[run].get("hypothesis", ""),
                sweep=self.sweeps.get(run),
                beats=checks.claim_of(self.runs[run].get("beats")),
                baseline=run == self.config.get("baseline"),
            )
            for run, seed in self.jobs
        ]

    # ------------------------------------------------------------ predict
    def predict_options(self) -> dict:
        """The config's predict: block with every default; an error naming what is missing."""
        given = self.config.get("predict")
        if not given or "images" not in given:
            raise ValueError(
                "`snakemake predict` needs a predict: block with images in the config, e.g.\n"
                "predict:\n  images: path/to/new/images"
            )
        return PredictOptions.from_dict(given, where="predict.").to_dict()

    def predict_candidates(self, run_dir: str) -> list[dict]:
        """[{run, seed, dir}] the predict step chooses from: every training job (run: best), the
        named run's seeds, or every run a named sweep expands to."""
        run = self.predict_options()["run"]
        swept = [name for name, sweep in self.sweeps.items() if sweep["run"] == run]
        wanted = self.runs if run == "best" else [run] if run in self.runs else swept
        if not wanted:
            raise ValueError(
                f"predict.run: {run!r} is not a run of this config; runs: {sorted(self.config['runs'])}"
            )
        return [
            {"run": name, "seed": seed, "dir": run_dir.format(run=name, seed=seed)}
            for name, seed in self.jobs
            if name in wanted
        ]


def no_schema(config: dict) -> None:
    """Where no schema validator is at hand (unit tests): checks below still run."""


def load(config: dict, validate=no_schema, config_dir=".", check_model=None) -> Plan:
    """The checked plan of one config: the schema (validate: Snakemake's validate with the
    config schema; it fills in the schema's defaults), sweeps expanded and each expanded run
    checked like a run of its own, the dataset's options, what the schema cannot see (class
    count, top_k, memory), every run's training options and, with check_model (the step's
    models.check_options, which needs torch), its model. Errors name the failing key."""
    checks.check_finite(config)
    validate(config)
    expanded, sweeps = runs.expand_runs(config["runs"])
    checks.check_run_names(config["runs"], checks.CONFIG_RUN_NAME_LENGTH)
    checks.check_run_names(expanded)
    checks.check_comparisons(config, expanded)
    # a swept key that is no training option, or a value of the wrong type, stops here naming it
    validate({**config, "runs": expanded})
    datasets.options(config["dataset"])  # unknown or missing dataset options
    analysis = AnalysisOptions.from_dict(config.get("analysis") or {}, where="analysis.").to_dict()
    config = {**config, "analysis": analysis}
    size = datasets.size(config["dataset"])
    checks.check_config(config, image_count=size[0] + size[1])
    plan = Plan(config, str(config_dir), expanded, sweeps, size)
    TrainOptions.from_dict(config.get("train", {}), where="train.")
    trained = {run: TrainOptions.from_dict(plan.train_options(run), where=f"runs.{run}.") for run in expanded}
    for run, options in trained.items():
        checks.check_run_options(run, options)
    if check_model is not None:
        check_models(trained, size[2], MODEL_CHECKS, check_model)
    return plan


def config_dir(config_files) -> str:
    """The folder of the last config file given (a model or weights file is relative to it), as
    a path relative to the working directory."""
    return os.path.relpath(Path(config_files[-1]).parent) if config_files else "."
