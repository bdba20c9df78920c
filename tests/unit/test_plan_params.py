"""A step's parameters in a file named by their content (labbook/plan/params.py): the path a rule
records changes exactly when a value does."""

import pytest
from labbook.plan import params


def test_the_path_follows_the_values_and_the_file_holds_them(tmp_path):
    first = params.write({"lr": 0.1, "title": "<b>x</b>"}, tmp_path)
    assert params.write({"title": "<b>x</b>", "lr": 0.1}, tmp_path) == first  # key order is no change
    other = params.write({"lr": 0.01, "title": "<b>x</b>"}, tmp_path)
    assert other != first
    assert params.read(first) == {"lr": 0.1, "title": "<b>x</b>"} and params.read(other)["lr"] == 0.01
    assert "<" not in first and "lr" not in first  # the path carries no config text


def test_a_missing_parameters_file_says_how_to_get_it_back(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the workflow again"):
        params.read(tmp_path / "gone.json")
