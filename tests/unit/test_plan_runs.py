"""Runs and sweeps (labbook/plan/runs.py): a sweep expands into one named run per combination;
a name taken twice is an error naming both."""

import pytest
from labbook.plan import runs as plan_runs


def test_a_sweep_expands_into_one_named_run_per_combination():
    runs = {
        "base": {"seeds": [0]},
        "cnn": {
            "seeds": [0, 1],
            "target_accuracy": 0.5,
            "sweep": {"lr": [0.1, 0.01], "batch_size": [128, 512]},
        },
    }
    expanded, sweeps = plan_runs.expand_runs(runs)
    assert list(expanded) == [
        "base",
        "cnn-lr0.1-batch_size128",
        "cnn-lr0.1-batch_size512",
        "cnn-lr0.01-batch_size128",
        "cnn-lr0.01-batch_size512",
    ]
    assert expanded["cnn-lr0.01-batch_size512"] == {
        "seeds": [0, 1],
        "target_accuracy": 0.5,
        "lr": 0.01,
        "batch_size": 512,
    }
    assert sweeps["cnn-lr0.1-batch_size512"] == {"run": "cnn", "values": {"lr": 0.1, "batch_size": 512}}
    assert "base" not in sweeps
    assert plan_runs.sweep_name("r", {"weights": "my/file.pt"}) == "r-weightsmy_file.pt"  # path-safe


def test_a_sweep_name_taken_by_another_run_is_an_error_naming_both():
    runs = {"cnn-lr0.1": {}, "cnn": {"sweep": {"lr": [0.1]}}}
    with pytest.raises(ValueError, match=r"'cnn'.*'cnn-lr0.1'"):
        plan_runs.expand_runs(runs)
