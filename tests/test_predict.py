"""Using a trained run: the portable model (model.pt2 + model.json) and the predict step."""

import json
import re
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import papermill
import pytest
import torch
import yaml
from conftest import REPO, copy_workflow, snakemake
from labbook import arrays, demo, export, imagefolder, predict, prepare, train
from labbook.plan import images
from PIL import Image

# Class names with characters that mean something in HTML and CSV.
CLASSES = ("circle", 'ring & "halo"', "square<b>")


def train_run(data_dir, out_dir, **options):
    opts = train.TrainOptions.from_dict({"epochs": 2, "device": "cpu", "batch_size": 32, **options})
    train.train(opts, data_dir, out_dir, seed=0, threads=1, log=lambda _: None)
    return out_dir


@pytest.fixture(scope="module")
def demo_run(demo_data, tmp_path_factory):
    return train_run(demo_data, tmp_path_factory.mktemp("run"))


def write_imagefolder(root, per_class_train=60, per_class_test=12):
    """The demo's first three shapes as image files of varied sizes and formats, plus a broken
    file in the test split: what a user's folder of photos looks like."""
    images, labels = demo.make_images(3 * 10 * (per_class_train + per_class_test), seed=1, size=32)
    counts = {}
    for image, label in zip(images, labels, strict=True):
        if label >= len(CLASSES):
            continue
        n = counts[label] = counts.get(label, -1) + 1
        split = "train" if n < per_class_train else "test"
        if split == "test" and n >= per_class_train + per_class_test:
            continue
        # Wider than tall, some larger, some smaller than the stored size: the resize policy matters.
        size = (48 + n % 3 * 16, 40) if n % 2 else (24, 20)
        picture = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)
        suffix = ".jpg" if n % 2 else ".png"
        path = root / split / CLASSES[label] / f"{n:03d} <{n}>&{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
    (root / "test" / CLASSES[0] / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


# ---------------------------------------------------------------- the portable model
def test_training_writes_the_portable_model_and_its_description(demo_run, demo_data):
    info = json.loads((demo_run / export.INFO).read_text(encoding="utf-8"))
    manifest = arrays.read_manifest(demo_data)
    assert (demo_run / info["program"]).is_file()
    assert info["classes"] == manifest["classes"]
    assert info["mean"] == manifest["mean"] and info["std"] == manifest["std"]
    assert info["image_size"] == 32 and info["input_size"] == 32
    assert info["resize"] in imagefolder.RESIZE_MODES
    assert info["model"] == "cifarnet"
    assert info["start_weights"]["weights"] == "none"
    assert info["torch_version"] == torch.__version__


TORCH_ONLY = """
import json, sys
class Refuse:  # labbook (installed in this Python) and torchvision must not be needed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("labbook", "torchvision"):
            raise ImportError(f"{name} is not importable here")
sys.meta_path.insert(0, Refuse())
import torch
info = json.load(open("model.json"))
model = torch.export.load(info["program"]).module()
images, expected = torch.load("sample.pt")
assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (3, info["input"]["height"], info["input"]["width"])
with torch.no_grad():
    logits = model(images)
print(json.dumps({"max_diff": (logits - expected).abs().max().item(), "shape": list(logits.shape),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("labbook", "torchvision"))}))
"""


@pytest.mark.parametrize(
    "options",
    [{"model": "cifarnet"}, {"model": "simplecnn", "input_size": 40, "channels_last": True}],
    ids=["cifarnet", "simplecnn-resized-on-device"],
)
def test_portable_model_reproduces_the_runs_logits_in_a_process_with_only_torch(options, demo_data, tmp_path):
    run_dir = train_run(demo_data, tmp_path / "run", epochs=1, **options)
    handed = tmp_path / "handed-over"  # what someone else receives: the two files, nothing more
    handed.mkdir()
    for name in (export.PROGRAM, export.INFO):
        shutil.copy(run_dir / name, handed / name)
    test_images, _ = arrays.load_split(demo_data, "test")
    with np.load(run_dir / "predictions.npz") as npz:
        logits = npz["logits"]
    pick = [0, 1, 7, 50, 199]  # a few test images, an odd batch size
    images = torch.from_numpy(test_images[pick]).permute(0, 3, 1, 2).contiguous()
    torch.save((images, torch.from_numpy(logits[pick])), handed / "sample.pt")
    result = subprocess.run(
        [sys.executable, "-I", "-c", TORCH_ONLY],  # -I: no PYTHONPATH, no user site, no cwd
        cwd=handed,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [len(pick), 10]
    assert report["modules"] == []  # neither labbook nor torchvision was needed
    assert report["max_diff"] < 1e-4


# ---------------------------------------------------------------- predict = training, per image
@pytest.mark.parametrize("resize", ["shorter_center_crop", "fixed"])
def test_predicting_the_test_split_files_gives_the_training_steps_top1(resize, tmp_path):
    root = write_imagefolder(tmp_path / "photos")
    data_dir = tmp_path / "data"
    spec = {"name": "photos", "kind": "imagefolder", "root": str(root), "image_size": 32, "resize": resize}
    manifest = prepare.prepare(spec, data_dir)
    assert [s["path"] for s in manifest["skipped"]] == [str(root / "test" / CLASSES[0] / "broken.jpg")]
    run_dir = train_run(data_dir, tmp_path / "run", epochs=15, lr=0.003, optimizer="adam")
    assert json.loads((run_dir / export.INFO).read_text(encoding="utf-8"))["resize"] == resize

    paths = images.image_paths(root / "test")
    result = predict.predict(run_dir, paths, batch_size=16, device="cpu", top_k=2)

    # The training step's test images, in its own order, without the file it skipped.
    _, _, test_files, _ = imagefolder.plan_splits(root, 0.1, 0)
    readable = [str(path) for path, _ in test_files if path.name != "broken.jpg"]
    with np.load(run_dir / "predictions.npz") as npz:
        trained_top1 = dict(zip(readable, npz["logits"].argmax(1), strict=True))
        trained_probs = dict(zip(readable, torch.from_numpy(npz["logits"]).softmax(1).numpy(), strict=True))
    assert sorted(result["files"]) == sorted(readable)
    for file, top, probs in zip(result["files"], result["top"], result["probabilities"], strict=True):
        assert top[0] == trained_top1[file], file
        np.testing.assert_allclose(probs, trained_probs[file], atol=1e-5)
    assert len(set(trained_top1.values())) > 1, "the model tells classes apart (else the test says little)"
    assert result["skipped"] == [
        {"path": str(root / "test" / CLASSES[0] / "broken.jpg"), "reason": manifest["skipped"][0]["reason"]}
    ]


def test_csv_and_page_list_top_k_per_image_with_names_escaped(tmp_path):
    root = write_imagefolder(tmp_path / "photos", per_class_train=20, per_class_test=3)
    data_dir = tmp_path / "data"
    prepare.prepare({"name": "photos", "kind": "imagefolder", "root": str(root)}, data_dir)
    run_dir = train_run(data_dir, tmp_path / "run", epochs=1)
    result = predict.predict(run_dir, images.image_paths(root / "test"), device="cpu", top_k=5)
    choice = predict.choose_run([{"run": "r<1>", "seed": 0, "dir": str(run_dir)}])

    predict.write_csv(tmp_path / "predictions.csv", result)
    rows = predict.read_csv(tmp_path / "predictions.csv")
    assert len(rows) == 9  # three per class; broken.jpg is not a row
    assert list(rows[0]) == [
        "file",
        "class_1",
        "probability_1",
        "class_2",
        "probability_2",
        "class_3",
        "probability_3",
    ]
    for row in rows:
        assert {row["class_1"], row["class_2"], row["class_3"]} == set(CLASSES)  # k capped at 3 classes
        probs = [float(row[f"probability_{i}"]) for i in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4

    predict.write_html(tmp_path / "predictions.html", result, choice)
    page = (tmp_path / "predictions.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 9
    assert "square<b>" not in page and "square&lt;b&gt;" in page
    assert "021 &lt;21&gt;&amp;.jpg" in page and "<21>" not in page  # the file "021 <21>&.jpg"
    assert "r&lt;1&gt;" in page
    assert "broken.jpg" in page and "cannot decode" in page


# ---------------------------------------------------------------- inputs and choices
def test_image_paths_from_a_folder_or_a_list_and_clear_errors(tmp_path):
    for name in ("a.png", "sub/b.JPG", ".hidden.png", "notes.txt", ".cache/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert images.image_paths(tmp_path) == [tmp_path / "a.png", tmp_path / "sub" / "b.JPG"]
    assert images.image_paths([str(tmp_path / "notes.txt"), tmp_path / "sub"]) == [
        tmp_path / "notes.txt",  # named explicitly: the user asked for it
        tmp_path / "sub" / "b.JPG",
    ]
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        images.image_paths([tmp_path / "missing-folder"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files under .*empty"):
        images.image_paths(tmp_path / "empty")


def test_nothing_readable_is_an_error_naming_the_files(demo_run, tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"(?s)none of the 1 file.*x\.png: empty file"):
        predict.predict(demo_run, [tmp_path / "x.png"], device="cpu")


def test_best_run_is_the_best_mean_over_seeds_and_its_best_seed(tmp_path):
    accuracies = {("wide", 0): 0.95, ("wide", 1): 0.55, ("steady", 0): 0.80, ("steady", 1): 0.82}
    candidates = []
    for (run, seed), acc in accuracies.items():
        folder = tmp_path / run / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"test_acc": acc}))
        candidates.append({"run": run, "seed": seed, "dir": str(folder)})
    best = predict.choose_run(candidates)
    assert (best["run"], best["seed"]) == ("steady", 1)  # mean 0.81 beats 0.75, despite 0.95
    assert best["mean_test_acc"] == pytest.approx({"wide": 0.75, "steady": 0.81})
    assert "best mean test accuracy (0.8100)" in best["reason"]
    named = predict.choose_run(candidates, "wide")
    assert (named["run"], named["seed"], named["dir"]) == ("wide", 0, str(tmp_path / "wide" / "seed0"))
    with pytest.raises(ValueError, match="'narrow' is not among the trained runs"):
        predict.choose_run(candidates, "narrow")


def test_images_fingerprint_changes_with_content_not_with_a_touch(tmp_path):
    (tmp_path / "a.png").write_bytes(b"one")
    cache_file = tmp_path / "md5.json"
    first = images.images_fingerprint(str(tmp_path), cache_file)
    (tmp_path / "a.png").touch()
    assert images.images_fingerprint(str(tmp_path), cache_file) == first
    (tmp_path / "a.png").write_bytes(b"two")
    assert images.images_fingerprint(str(tmp_path), cache_file) != first
    assert images.images_fingerprint(str(tmp_path / "gone"), cache_file).startswith("unavailable")


def test_notebook_runs_standalone_with_its_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    executed = tmp_path / "predict.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "predict.ipynb"),
        str(executed),
        kernel_name="python3",
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
    )
    outputs = [o for cell in nbformat.read(executed, 4).cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "data:image/png;base64," in shown  # the images with their predictions
    assert "broken" in shown  # the standalone demo's unreadable file is listed


# ---------------------------------------------------------------- the workflow's predict target
def predict_config(tmp_path, images) -> dict:
    """The tiny test experiment with two small runs (one with two seeds) and a predict: block."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["train"]["epochs"] = 1
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
    accuracy = {
        (run, seed): json.loads((experiment / f"runs/{run}/seed{seed}/metrics.json").read_text())["test_acc"]
        for run, seed in [("simple", 0), ("cifarnet", 0), ("cifarnet", 1)]
    }
    means = {
        "simple": accuracy["simple", 0],
        "cifarnet": (accuracy["cifarnet", 0] + accuracy["cifarnet", 1]) / 2,
    }
    assert summary["run"] == max(means, key=means.get)  # the first in config order on a tie
    assert summary["mean_test_acc"] == pytest.approx(means)
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
    shutil.copy(REPO / "tests" / "configs" / "tiny.yaml", work / "config.yaml")
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
