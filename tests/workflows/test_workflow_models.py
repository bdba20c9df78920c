"""A user's model file in the workflow, in a throwaway copy: an experiment folder of the user's
(its config and nets/tiny.py beside it) trains the file's model end to end, and editing the file
reruns its run only. (Building such a model: unit/test_models.py.)"""

import json

import pytest
import yaml
from builders import USER_MODEL, copy_workflow, snakemake, tiny_config


@pytest.mark.slow
def test_a_user_model_file_trains_in_the_workflow_and_editing_it_reruns_only_its_run(tmp_path):
    """An experiment folder of the user's (its config and nets/tiny.py beside it) run by a copy
    of the workflow: the file's model trains end to end; editing the file reruns its run only."""
    workdir = copy_workflow(tmp_path / "workflow")
    experiment = tmp_path / "my-experiment"
    (experiment / "nets").mkdir(parents=True)
    (experiment / "nets" / "tiny.py").write_text(USER_MODEL)
    config = tiny_config(experiment="mine")
    config["runs"] = {
        "cifarnet": {"seeds": [0]},
        "tiny": {"model": "nets/tiny.py:TinyNet", "model_args": {"width": 12}, "seeds": [0]},
    }
    (experiment / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--configfile", str(experiment / "config.yaml"))

    runs = workdir / "results" / "mine" / "runs"
    metrics = json.loads((runs / "tiny" / "seed0" / "metrics.json").read_text())
    assert metrics["options"]["model"] == "../my-experiment/nets/tiny.py:TinyNet"
    assert metrics["parameters"]["total"] == 3 * 12 * 9 + 12 + 12 * 10 + 10  # conv + linear
    assert len(metrics["history"]) == config["train"]["epochs"]
    outputs = {
        "train tiny": runs / "tiny/seed0/metrics.json",
        "analyze tiny": runs / "tiny/seed0/analysis/evaluation.json",
        "train cifarnet": runs / "cifarnet/seed0/metrics.json",
        "analyze cifarnet": runs / "cifarnet/seed0/analysis/evaluation.json",
        "report": workdir / "results" / "mine" / "report.html",
    }
    before = {job: path.stat().st_mtime_ns for job, path in outputs.items()}
    with open(experiment / "nets" / "tiny.py", "a") as file:
        file.write("\n# a comment: the file changed\n")
    snakemake(workdir, "--configfile", str(experiment / "config.yaml"))
    ran = {job for job, path in outputs.items() if path.stat().st_mtime_ns != before[job]}
    assert ran == {"train tiny", "analyze tiny", "report"}
