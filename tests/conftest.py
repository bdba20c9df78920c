"""Fixtures for every test folder: a small demo dataset, and a lab report built from fabricated
runs. (What tests import, such as copies of the workflow to run, is in builders.py.)"""

import shutil

import pytest

# The shared helpers assert too: pytest shows their failures in full, as a test's own.
pytest.register_assert_rewrite("builders", "report_demo")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """A small demo cache (1000 train, 200 validation, 200 test images), built once per test session."""
    from labbook import prepare

    out = tmp_path_factory.mktemp("demo-data")
    spec = {"name": "shapes", "kind": "demo", "train_size": 1200, "val_size": 200, "test_size": 200}
    prepare.prepare(spec, out)
    return out


@pytest.fixture(scope="session")
def demo_report(demo_data, tmp_path_factory):
    """report.html built from fabricated runs by the real analyze and report notebooks (see
    report_demo.py), once per test session (its tests are all in steps/test_report_notebook.py:
    one file, so with --dist loadfile one worker builds it)."""
    import report_demo

    return report_demo.build(demo_data, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def module_folder(request, tmp_path_factory):
    """A folder for the workflow a test module shares, deleted after the module when none of its
    tests failed (pytest's tmp_path_retention_policy = "failed" covers only tmp_path). With
    --dist loadfile a module's tests run one after another in one worker, so the session's count
    of failures grows during the module only by its own."""
    failed_before = request.session.testsfailed
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield folder
    if request.session.testsfailed == failed_before:
        shutil.rmtree(folder, ignore_errors=True)
