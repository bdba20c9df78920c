"""The workflow's predict target, in a throwaway copy: it chooses the best run, predicts new images
and reruns only itself on a new one; without a predict: block it says what to add; given a
sweep's name it trains and chooses among that sweep's runs. (The predict step's library:
unit/test_predict.py.)"""

import json
import re
import shutil

import pytest
import yaml
from builders import TINY_CONFIG, copy_workflow, snakemake, tiny_config
from labbook import demo, predict
from PIL import Image


def predict_config(tmp_path, images) -> dict:
    """The tiny test experiment with two small runs (one with two seeds) and a predict: block."""
    config = tiny_config(train__epochs=1)
    config["runs"] = {"simple": {"model": "simplecnn", "seeds": [0]}, "cifarnet": {"seeds": [0, 1]}}
    config["predict"] = {"images": images, "top_k": 3}
    return config


@pytest.mark.slow
def test_snakemake_predict_chooses_the_best_run_and_reruns_on_new_images(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    images = work / "new images"
    images.mkdir()
    pictures, _ = demo.make_images(6, seed=5)
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(images / f"shape {i}.png")
    (images / "broken.png").write_bytes(b"")
    config = predict_config(tmp_path, "new images")
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    snakemake(work, "predict")

    experiment = work / "results" / config["experiment"]
    summary = json.loads((experiment / "predict/summary.json").read_text())
    accuracy = {  # chosen on validation
        (run, seed): json.loads((experiment / f"runs/{run}/seed{seed}/metrics.json").read_text())["val_acc"]
        for run, seed in [("simple", 0), ("cifarnet", 0), ("cifarnet", 1)]
    }
    means = {
        "simple": accuracy["simple", 0],
        "cifarnet": (accuracy["cifarnet", 0] + accuracy["cifarnet", 1]) / 2,
    }
    assert summary["run"] == max(means, key=means.get)  # the first in config order on a tie
    assert summary["mean_val_acc"] == pytest.approx(means)
    assert (summary["images"], summary["predicted"]) == (7, 6)
    assert summary["skipped"][0]["path"].endswith("broken.png")
    rows = predict.read_csv(experiment / "predict/predictions.csv")
    assert [row["file"] for row in rows] == [f"new images/shape {i}.png" for i in range(6)]
    assert "probability_3" in rows[0] and "class_4" not in rows[0]
    page = (experiment / "predict/predictions.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 6
    assert "predict: 100%" in (experiment / "logs/predict/predict.log").read_text()  # tqdm in the log

    assert "Nothing to be done" in snakemake(work, "predict", "-n").stdout
    Image.fromarray(pictures[0]).save(images / "one more.png")  # a new image reruns only predict
    dry_run = snakemake(work, "predict", "-n").stdout
    assert "rule predict:" in dry_run and "rule train:" not in dry_run


def test_snakemake_predict_without_a_predict_block_says_what_to_add(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    shutil.copy(TINY_CONFIG, work / "config.yaml")
    result = snakemake(work, "predict", "-n", check=False)
    assert result.returncode != 0
    assert "needs a predict: block" in result.stdout + result.stderr
    config = predict_config(tmp_path, "photos")
    config["predict"]["run"] = "resnet"
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(work, "predict", "-n", check=False)
    assert result.returncode != 0
    assert "predict.run: 'resnet' is not a run of this config" in result.stdout + result.stderr


def test_snakemake_predict_with_a_sweeps_name_trains_and_chooses_among_its_runs(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = predict_config(tmp_path, "photos")
    config["runs"]["lrs"] = {"seeds": [0], "sweep": {"lr": [0.1, 0.01]}}
    config["predict"]["run"] = "lrs"
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dry_run = snakemake(work, "predict", "-n").stdout
    trained = set(re.findall(r"wildcards: run=([\w.-]+), seed=0", dry_run))
    assert trained == {"lrs-lr0.1", "lrs-lr0.01"}  # not the other runs
