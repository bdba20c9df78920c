"""Using a trained run: the portable model (labbook/export.py: model.pt2 + model.json) and the
predict step's library (labbook/predict.py): predicting files gives training's answers, the CSV
and page list the top k with names escaped, the best run is chosen over seeds. (Its inputs:
test_plan_images.py; its notebook: steps/test_notebooks.py; the workflow's predict target:
workflows/test_workflow_predict.py.)"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from builders import image_folder
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
    """The demo's first three shapes as image files of varied sizes and formats, named with
    characters that mean something in HTML, plus a broken file in the test split: what a user's
    folder of photos looks like."""
    images, labels = demo.make_images(3 * 10 * (per_class_train + per_class_test), seed=1, size=32)
    shapes = [images[labels == label] for label in range(len(CLASSES))]

    def picture(slot):
        # Wider than tall, some larger, some smaller than the stored size: the resize policy matters.
        size = (48 + slot.n % 3 * 16, 40) if slot.n % 2 else (24, 20)
        return Image.fromarray(shapes[slot.label][slot.n]).resize(size, Image.Resampling.BILINEAR)

    image_folder(
        root,
        per_class={
            "train": dict.fromkeys(CLASSES, per_class_train),
            "test": dict.fromkeys(CLASSES, per_class_test),
        },
        name=lambda slot: f"{slot.n:03d} <{slot.n}>&{'.jpg' if slot.n % 2 else '.png'}",
        picture=picture,
    )
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
    test_files = imagefolder.plan_splits(root, 0.1, 0)[2]
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


# ---------------------------------------------------------------- errors and choices


def test_nothing_readable_is_an_error_naming_the_files(demo_run, tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"(?s)none of the 1 file.*x\.png: empty file"):
        predict.predict(demo_run, [tmp_path / "x.png"], device="cpu")


def test_best_run_is_the_best_mean_validation_accuracy_and_its_best_seed_never_test(tmp_path):
    # (validation, test) accuracy: test would choose wide (mean 0.90) and its seed 0
    accuracies = {
        ("wide", 0): (0.95, 0.97),
        ("wide", 1): (0.55, 0.83),
        ("steady", 0): (0.80, 0.79),
        ("steady", 1): (0.82, 0.78),
    }
    candidates = []
    for (run, seed), (val, test) in accuracies.items():
        folder = tmp_path / run / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"val_acc": val, "test_acc": test}))
        candidates.append({"run": run, "seed": seed, "dir": str(folder)})
    best = predict.choose_run(candidates)
    assert (best["run"], best["seed"]) == ("steady", 1)  # validation mean 0.81 beats 0.75, despite 0.95
    assert best["mean_val_acc"] == pytest.approx({"wide": 0.75, "steady": 0.81})
    assert best["mean_test_acc"] == pytest.approx({"wide": 0.90, "steady": 0.785})
    assert "best mean validation accuracy (0.8100)" in best["reason"]
    named = predict.choose_run(candidates, "wide")
    assert (named["run"], named["seed"], named["dir"]) == ("wide", 0, str(tmp_path / "wide" / "seed0"))
    with pytest.raises(ValueError, match="'narrow' is not among the trained runs"):
        predict.choose_run(candidates, "narrow")
