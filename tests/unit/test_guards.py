"""Guards that a reviewer's deliberate breakages got past: each is one fast test of a promise the
plan, the report or training makes. A sweep's name colliding with a run defined after it; every
figure the analysis writes shown in the report; each training option's lower bound; a retried
job asking for more, for every step; the GPU summary's peaks; run names in the GPU table; a
train subset drawn from the run's seed."""

import base64
import dataclasses
import re

import numpy as np
import pytest
import torch
from builders import REPO, image_folder, tiny_config
from labbook import gpustats, markup, report, train
from labbook.plan import files
from labbook.plan import runs as plan_runs
from labbook.plan.config import load
from labbook.plan.options import TrainOptions


# ---------------------------------------------------------------- sweeps
def test_a_sweep_name_taken_by_a_run_defined_after_the_sweep_is_an_error():
    runs = {"cnn": {"sweep": {"lr": [0.1, 0.01]}}, "cnn-lr0.01": {"seeds": [1]}}
    with pytest.raises(
        ValueError, match=r"run 'cnn': .* is named 'cnn-lr0\.01', which another run already has"
    ):
        plan_runs.expand_runs(runs)


# ---------------------------------------------------------------- the report's figures
def test_the_report_shows_every_figure_the_analysis_writes(demo_report):
    page = demo_report.read_text()
    folders = sorted(
        (demo_report.parent / "runs").glob(f"*/seed*/{files.ANALYSIS_FOLDER}/{files.FIGURES_FOLDER}")
    )
    assert len(folders) == 3, folders  # the fabricated report's three jobs
    for folder in folders:
        written = {path.stem for path in folder.iterdir()}
        assert written == set(files.FIGURES), folder
        for path in folder.iterdir():
            inlined = base64.b64encode(path.read_bytes()).decode()
            assert inlined in page, f"report.html does not show {path.relative_to(demo_report.parent)}"
    for name in files.FIGURES:
        assert page.count(f'alt="{name}"') == len(folders), name


# ---------------------------------------------------------------- training options' lower bounds
BOUNDED = [field for field in dataclasses.fields(TrainOptions) if {"minimum", "above"} & set(field.metadata)]


def test_every_numeric_training_option_has_a_lower_bound():
    numeric = {field.name for field in dataclasses.fields(TrainOptions) if field.type in (int, float)}
    assert numeric and numeric == {field.name for field in BOUNDED}


@pytest.mark.parametrize("field", BOUNDED, ids=lambda field: field.name)
def test_each_training_options_lower_bound_is_enforced(field):
    name, checks = field.name, field.metadata
    if "minimum" in checks:
        lowest = checks["minimum"]
        below = lowest - (1 if field.type is int else 0.5)
        assert getattr(TrainOptions.from_dict({name: lowest}), name) == lowest
        refused = [below]
    else:
        lowest = checks["above"]
        refused = [lowest, lowest - (1 if field.type is int else 0.5)]
        assert getattr(TrainOptions.from_dict({name: lowest + 1}), name) == lowest + 1
    for value in refused:
        with pytest.raises(
            ValueError, match=rf"^training option runs\.x\.{name}={re.escape(repr(value))}: must be"
        ):
            TrainOptions.from_dict({name: value}, where="runs.x.")


# ---------------------------------------------------------------- a retried job asks for more
STEPS = ("prepare_data", "train", "analyze", "report", "index", "predict")


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    images = image_folder(tmp_path_factory.mktemp("new-images"), ("a",), 3, splits=("x",))
    return load(tiny_config(predict={"images": str(images)}))


@pytest.mark.parametrize("step", STEPS)
def test_a_retried_job_asks_for_attempt_times_its_runtime_and_memory(plan, step):
    run = "resnet18" if step == "train" else None
    first = plan.limits(step, 2, run, 1)
    assert set(first) == {"runtime", "mem_mb"} and all(value > 0 for value in first.values())
    assert plan.limits(step, 2, run) == first, "the first attempt is the default"
    for attempt in (2, 3):
        assert plan.limits(step, 2, run, attempt) == {k: attempt * v for k, v in first.items()}, attempt


def smk_rules() -> dict:
    """{rule name: its text} of every rule in rules/*.smk."""
    found = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        found.update(dict(zip(parts[1::2], parts[2::2], strict=True)))
    return found


def test_every_rule_asks_for_runtime_and_memory_through_limit():
    rules = smk_rules()
    assert set(rules) == set(STEPS), sorted(rules)
    for name, text in rules.items():
        for resource in ("runtime", "mem_mb"):
            assert f'{resource}=limit("{name}", "{resource}")' in text, (name, resource)


def test_the_rules_limit_passes_the_attempt_to_the_plan(plan):
    """limit() of rules/common.smk, run on its own against the plan."""
    common = (REPO / "rules" / "common.smk").read_text()
    source = re.search(r"^def limit\(.*?(?=^\S)", common, flags=re.M | re.S).group(0)
    namespace = {"PLAN": plan}
    exec(source, namespace)
    wildcards = type("Wildcards", (), {"run": "resnet18", "seed": "0"})()
    for step in STEPS:
        run = "resnet18" if step == "train" else None
        for name in ("runtime", "mem_mb"):
            resource = namespace["limit"](step, name)
            once = resource(wildcards, threads=2, attempt=1)
            assert once == plan.limits(step, 2, run)[name]
            assert resource(wildcards, threads=2, attempt=3) == 3 * once, (step, name)


# ---------------------------------------------------------------- the GPU summary and table
def test_the_gpu_summarys_peaks_are_the_highest_over_the_epochs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Fake GPU")
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device: type("Props", (), {"total_memory": 80 * 2**30})
    )
    stats = gpustats.EpochStats(torch.device("cuda"))
    epochs = [(100.0, 700.0, 50.0), (900.0, 400.0, 70.0), (300.0, 500.0, None)]  # each peak in another epoch
    history = [
        {"epoch": i, "gpu": {"peak_allocated_mib": a, "peak_reserved_mib": r, "utilization_percent": u}}
        for i, (a, r, u) in enumerate(epochs, 1)
    ]
    summary = stats.summary(history)
    assert summary["peak_allocated_mib"] == 900.0
    assert summary["peak_reserved_mib"] == 700.0
    assert summary["utilization_percent"] == 60.0 and summary["total_mib"] == 80 * 1024


def test_run_names_are_escaped_in_the_gpu_table():
    name = '<img src=x onerror="window.pwned=1">|x'
    on_gpu = {"name": "H100", "total_mib": 81559.0, "peak_allocated_mib": 1000.0, "peak_reserved_mib": 2000.0,
              "utilization_percent": 40.0, "note": ""}  # fmt: skip
    records = [
        {"name": name, "seed": 0, "metrics": {"gpu": on_gpu}},
        {
            "name": name + "-cpu",
            "seed": 1,
            "metrics": {"gpu": {"name": None, "note": "no GPU: trained on cpu"}},
        },
    ]
    table = report.gpu_table(records)
    assert "<img" not in table and "|x |" not in table
    rows = table.splitlines()[2:4]
    assert rows[0].startswith(f"| {markup.md(name)} | 0 | H100 |"), rows
    assert rows[1].startswith(f"| {markup.md(name + '-cpu')} | 1 |"), rows


# ---------------------------------------------------------------- a train subset from the run's seed
class Stop(Exception):
    """Ends a training once its data are loaded."""


LOAD_SPLITS = train.load_splits


def train_subset(monkeypatch, data_dir, out_dir, seed: int) -> np.ndarray:
    """The training images train() keeps of data_dir with train_subset 50, with this seed."""
    kept = []

    def load_then_stop(*args, **kwargs):
        (train_data, _, _), _ = LOAD_SPLITS(*args, **kwargs)
        kept.append(train_data.images.cpu().numpy())
        raise Stop

    monkeypatch.setattr(train, "load_splits", load_then_stop)
    opts = TrainOptions(model="simplecnn", device="cpu", epochs=1, train_subset=50)
    with pytest.raises(Stop):
        train.train(opts, data_dir, out_dir, seed=seed, log=lambda _: None)
    assert kept[0].shape[0] == 50
    return kept[0]


def test_a_train_subset_is_drawn_from_the_runs_seed(monkeypatch, tmp_path, demo_data):
    first, again = (train_subset(monkeypatch, demo_data, tmp_path / "a", 1) for _ in range(2))
    other = train_subset(monkeypatch, demo_data, tmp_path / "b", 2)
    assert np.array_equal(first, again), "one seed, one subset"
    assert not np.array_equal(first, other), "two seeds, two subsets"
