"""The report's job record: what the report step is told of each training job. One type, built
by the workflow (rules/common.smk), read by the report (labbook.report.load_runs) and made by the
tests for fabricated runs; the file names inside a job's folders come from plan/files.py."""

from dataclasses import asdict, dataclass
from pathlib import Path

from . import files


@dataclass(frozen=True)
class JobRecord:
    name: str  # the run (a sweep's combination has its own name)
    seed: int
    run_dir: str  # the train step's folder
    analysis_dir: str  # the analyze step's folder
    target_accuracy: float | None = None
    hypothesis: str = ""
    sweep: dict | None = None  # {"run": the config's run, "values": {option: value}}
    beats: dict | None = None  # {"run": another run, "margin": fraction}: a claim the report checks
    baseline: bool = False  # the run the report compares every other run with (config `baseline`)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "JobRecord":
        return cls(**values)

    def train_files(self) -> dict:
        return files.paths("train", self.run_dir)

    def analysis_files(self) -> dict:
        return files.paths("analyze", self.analysis_dir)

    def figures(self) -> dict:
        """{figure stem: path} of the analysis step's figures, in files.FIGURES' order."""
        return {name: Path(self.analysis_dir) / files.ANALYSIS[name] for name in files.FIGURES}
