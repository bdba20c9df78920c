"""The training library (labbook/train.py) end to end: options and shipped configs, gradient
clipping, outputs, the three splits' roles (val after every epoch, test once), determinism,
resume, precision and memory layout, devices, pretrained normalization, one network per run; and
the training benchmark script runs. (Augmentation and training batches: test_train_augment.py;
the schedule, TensorBoard, keep/patience and checkpoints: test_train_behaviour.py.)"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from builders import REPO, weights_hash, without_timings
from labbook import arrays, batches, train
from labbook.plan import options

SPLITS = {"name": "shapes", "kind": "demo", "train_size": 1200, "val_size": 200, "test_size": 200}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """Demo data of the sizes these tests' numbers are calibrated on: 1000 train, 200 val (held
    out of 1200 generated training images) and 200 test images; built in half a second."""
    from labbook import prepare

    out = tmp_path_factory.mktemp("demo-data-splits")
    prepare.prepare(SPLITS, out)
    return out


def test_options_reject_unknown_keys_wrong_types_choices_and_ranges_naming_the_key():
    with pytest.raises(ValueError, match="unknown training option 'runs.a.lrr'"):
        train.TrainOptions.from_dict({"lrr": 0.1}, where="runs.a.")
    with pytest.raises(TypeError, match="'epochs' must be int"):
        train.TrainOptions.from_dict({"epochs": 2.5})
    with pytest.raises(TypeError, match="'flip' must be bool"):
        train.TrainOptions.from_dict({"flip": "yes"})
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        train.TrainOptions.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="train.lr=0: must be > 0"):
        train.TrainOptions.from_dict({"lr": 0}, where="train.")
    with pytest.raises(ValueError, match="label_smoothing=1.5: must be ≤ 1"):
        train.TrainOptions.from_dict({"label_smoothing": 1.5})
    with pytest.raises(ValueError, match="trainable='last-0'"):
        train.TrainOptions.from_dict({"trainable": "last-0"})
    with pytest.raises(ValueError, match="device='gpu'"):
        train.TrainOptions.from_dict({"device": "gpu"})
    with pytest.raises(ValueError, match=r"runs.a.keep='first': choose one of \('last', 'best'\)"):
        train.TrainOptions.from_dict({"keep": "first"}, where="runs.a.")
    with pytest.raises(ValueError, match="patience=-1: must be ≥ 0"):
        train.TrainOptions.from_dict({"patience": -1})
    with pytest.raises(TypeError, match="'patience' must be int"):
        train.TrainOptions.from_dict({"patience": 1.5})
    assert (train.TrainOptions().keep, train.TrainOptions().patience) == ("last", 0), "off by default"
    opts = train.TrainOptions.from_dict({"lr": 1, "model": "simplecnn"})
    assert opts.lr == 1.0 and isinstance(opts.lr, float)
    assert opts.epochs == train.TrainOptions().epochs, "what a config leaves out keeps its default"


@pytest.mark.parametrize("key", ["epochs", "batch_size", "lr", "weight_decay", "patience"])
def test_a_bool_is_no_number_option(key):
    with pytest.raises(TypeError, match=f"'{key}' must be"):
        train.TrainOptions.from_dict({key: True})
    assert train.TrainOptions.from_dict({"flip": False}).flip is False


def shipped_configs():
    return [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_configs_state_only_what_they_change_and_every_run_is_valid(path):
    config = yaml.safe_load(path.read_text())
    defaults = options.defaults()
    restated = {k: v for k, v in config.get("train", {}).items() if defaults.get(k) == v}
    assert restated == {}, "train: restates defaults"
    for run, spec in config["runs"].items():
        values = {**config.get("train", {}), **{k: v for k, v in spec.items() if k in defaults}}
        train.TrainOptions.from_dict(values, where=f"runs.{run}.")
    assert "precision" not in config.get("train", {}), "precision: auto, the default"


def test_grad_clip_bounds_the_gradient_norm_of_each_step():
    def step_gradient_norm(grad_clip):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 3)
        opts = train.TrainOptions(grad_clip=grad_clip)
        optimizer = train.make_optimizer(opts, model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        x, y = torch.randn(16, 8) * 100, torch.randint(0, 3, (16,))
        train.train_step(model, x, y, opts, torch.nn.CrossEntropyLoss(), optimizer, scheduler, scaler)
        return torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()])).item()

    assert step_gradient_norm(0.0) > 10, "large inputs, large gradients"
    assert step_gradient_norm(0.5) == pytest.approx(0.5, rel=1e-4)


TINY = {"model": "cifarnet", "epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003, "crop_padding": 2,
        "deterministic": True, "device": "cpu", "log_every": 5}  # fmt: skip


def test_training_writes_its_outputs_and_learns(demo_data, tmp_path):
    # 8 epochs at lr 0.002 reach 0.60-0.82 test accuracy (0.60-0.77 val) over seeds 0-2 (at
    # 0.003 seed 0 never leaves chance): a floor of 0.4 leaves room for a harmless change yet
    # fails a broken loop, augmentation or schedule.
    opts = train.TrainOptions.from_dict({**TINY, "epochs": 8, "lr": 0.002})
    metrics = train.train(opts, demo_data, tmp_path, seed=0, threads=2, log=lambda *_: None)
    for name in ("model.pt", "metrics.json", "predictions.npz"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "checkpoint.pt").exists(), "a finished run needs no checkpoint"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(metrics["history"]) == 8
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    assert metrics["test_acc"] > 0.4, "ten balanced classes: chance is 0.1"
    assert metrics["val_acc"] > 0.4
    assert metrics["parameters"]["total"] == 145_578
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] == metrics["test_acc"]
    # every epoch is evaluated on val, none on test; the default keeps the last epoch
    for record in metrics["history"]:
        assert {"val_loss", "val_acc"} <= set(record) and not any(k.startswith("test") for k in record)
    assert metrics["chosen_on"] == "val" and metrics["kept"] == "last" and metrics["best_epoch"] == 8
    assert metrics["stopped_early"] is None
    assert (metrics["val_acc"], metrics["val_loss"]) == (
        metrics["history"][-1]["val_acc"],
        metrics["history"][-1]["val_loss"],
    )
    assert (metrics["train_images"], metrics["val_images"], metrics["test_images"]) == (1000, 200, 200)


def test_val_is_evaluated_every_epoch_and_test_once_on_the_saved_model(demo_data, tmp_path, monkeypatch):
    """Which split each evaluation train() makes is of: val after each epoch, then test once; and
    the test numbers in metrics.json and predictions.npz are those of model.pt, evaluated anew."""
    splits, evaluated = {}, []
    load_splits, evaluate = train.load_splits, train.evaluate

    def recording_load_splits(*args):
        loaded, placement = load_splits(*args)
        splits.update(zip(("train", "val", "test"), loaded, strict=True))
        return tuple(splits.values()), placement

    def recording_evaluate(model, data, *args):
        evaluated.append(next(name for name, split in splits.items() if split is data))
        return evaluate(model, data, *args)

    monkeypatch.setattr(train, "load_splits", recording_load_splits)
    monkeypatch.setattr(train, "evaluate", recording_evaluate)
    opts = train.TrainOptions.from_dict({**TINY, "model": "simplecnn", "epochs": 2, "train_subset": 64})
    metrics = train.train(opts, demo_data, tmp_path, threads=2, log=lambda *_: None)
    assert evaluated == ["val", "val", "test"]

    monkeypatch.undo()
    model = train.build_network(opts, 10, torch.device("cpu"))
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    inputs = metrics["inputs"]
    test = batches.DeviceData(*arrays.load_split(demo_data, "test"), inputs["mean"], inputs["std"], "cpu",
                            inputs["input_size"])  # fmt: skip
    loss, accuracy, logits = train.evaluate(model, test, opts)
    assert (metrics["test_loss"], metrics["test_acc"]) == pytest.approx((loss, accuracy))
    saved = np.load(tmp_path / "predictions.npz")
    assert np.allclose(saved["logits"], logits.numpy(), atol=1e-5)
    assert saved["labels"].tolist() == test.labels.tolist()


def test_deterministic_mode_gives_identical_runs(demo_data, tmp_path):
    opts = train.TrainOptions.from_dict(TINY)
    runs = [
        train.train(opts, demo_data, tmp_path / name, seed=3, threads=2, log=lambda *_: None)
        for name in ("a", "b")
    ]
    assert without_timings(runs[0]) == without_timings(runs[1])
    assert weights_hash(tmp_path / "a" / "model.pt") == weights_hash(tmp_path / "b" / "model.pt")
    other_seed = train.train(opts, demo_data, tmp_path / "c", seed=4, threads=2, log=lambda *_: None)
    assert weights_hash(tmp_path / "c" / "model.pt") != weights_hash(tmp_path / "a" / "model.pt")
    assert other_seed["history"] != runs[0]["history"]


def test_a_checkpoint_of_other_options_is_not_resumed(demo_data, tmp_path):
    logs = []
    kept = {**TINY, "keep_checkpoint": True}
    train.train(train.TrainOptions.from_dict(kept), demo_data, tmp_path, threads=2, log=logs.append)
    changed = train.TrainOptions.from_dict({**kept, "lr": 0.001})
    metrics = train.train(changed, demo_data, tmp_path, threads=2, log=logs.append)
    assert metrics["resumed_after_epoch"] == 0
    assert not any("resuming" in line for line in logs)
    again = train.train(changed, demo_data, tmp_path, threads=2, log=logs.append)
    assert again["resumed_after_epoch"] == 2, "the same options resume (here: nothing left to do)"
    assert without_timings(again) == without_timings(metrics)


def test_precision_auto_is_fp32_on_a_cpu_and_bf16_there_warns_in_log_and_metrics(demo_data, tmp_path):
    cpu = torch.device("cpu")
    assert train.resolve_precision("auto", cpu) == ("fp32", None)
    assert train.resolve_precision("fp32", cpu) == ("fp32", None)
    logs = []
    opts = train.TrainOptions.from_dict({**TINY, "epochs": 1, "train_subset": 64, "precision": "bf16"})
    metrics = train.train(opts, demo_data, tmp_path, threads=2, log=logs.append)
    assert metrics["precision"] == "bf16" and metrics["options"]["precision"] == "bf16"
    assert any(line.startswith("WARNING: precision bf16 on a CPU") for line in logs)
    assert metrics["warnings"] and "bf16 on a CPU" in metrics["warnings"][0]
    auto = train.train(train.TrainOptions.from_dict({**TINY, "epochs": 1, "train_subset": 64}), demo_data,
                       tmp_path / "auto", threads=2, log=lambda *_: None)  # fmt: skip
    assert auto["precision"] == "fp32" and auto["options"]["precision"] == "auto" and auto["warnings"] == []


def test_precision_sets_the_autocast_dtype():
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    cpu = torch.device("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside someone else's autocast
        with train._autocast(train.TrainOptions(precision="fp32"), cpu):
            assert torch.mm(a, b).dtype == torch.float32
    with train._autocast(train.TrainOptions(precision="bf16"), cpu):
        assert torch.mm(a, b).dtype == torch.bfloat16
    with train._autocast(train.TrainOptions(precision="fp16"), cpu):
        assert torch.get_autocast_dtype("cpu") == torch.float16


def test_layout_follows_channels_last():
    x = torch.rand(2, 3, 5, 5)
    last = train._layout(x, train.TrainOptions(channels_last=True))
    assert last.is_contiguous(memory_format=torch.channels_last) and torch.equal(last, x)
    assert train._layout(x, train.TrainOptions()) is x


def test_choose_device_falls_back_to_cpu_and_rejects_missing_cuda(monkeypatch):
    assert train.choose_device("cpu") == torch.device("cpu")
    # as on a machine without CUDA or MPS, whatever this one has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert train.choose_device() == torch.device("cpu") == train.choose_device("auto")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train.choose_device("cuda:1")


def model_inputs(monkeypatch) -> list:
    """Every batch train() feeds the model it trains, recorded by a forward pre-hook. The
    portable export traces a copy of that model, hook included: the hook records only calls of
    the trained model itself."""
    seen, build = [], train.models.build

    def recording_build(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda module, inputs: seen.append(inputs[0].detach().clone()) if module is model else None
        )
        return model

    monkeypatch.setattr(train.models, "build", recording_build)
    return seen


def test_the_network_is_built_once_per_run_and_exported_as_trained(demo_data, tmp_path, monkeypatch):
    """train() builds its network once: the portable export is a copy of the trained network,
    not a rebuild, and leaves that network as it was."""
    built, build = [], train.models.build
    monkeypatch.setattr(train.models, "build", lambda *a, **kw: built.append(build(*a, **kw)) or built[-1])
    exported, write_portable = [], train.export.write_portable

    def recording_write_portable(model, *args):
        model.train()  # evaluation left it in eval mode; the export must not switch it
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        paths = write_portable(model, *args)
        exported.append(model)
        assert model.training, "the export switched training's network to eval mode"
        assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
        return paths

    monkeypatch.setattr(train.export, "write_portable", recording_write_portable)
    opts = train.TrainOptions.from_dict({**TINY, "epochs": 1, "train_subset": 64, "channels_last": True})
    train.train(opts, demo_data, tmp_path, threads=2, log=lambda *_: None)
    assert len(built) == 1, "one network per run"
    assert exported == built, "the export is of the network trained"
    conv = next(p for p in built[0].parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last), "training's network keeps its layout"


def test_pretrained_weights_get_their_normalization_not_the_datasets(demo_data, tmp_path, monkeypatch):
    """A ResNet18 with (cached) ImageNet weights is fed ImageNet-normalized images; without
    weights, the dataset's statistics. (The default size, the weights' crop: test_models.py.)"""
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(resnet18().state_dict(), tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    images = torch.from_numpy(np.load(demo_data / "test_images.npy")).permute(0, 3, 1, 2).float() / 255
    manifest = json.loads((demo_data / "manifest.json").read_text())
    run = {
        **TINY,
        "model": "resnet18",
        "epochs": 1,
        "train_subset": 32,
        "batch_size": 32,
        "trainable": "head",
    }
    for weights, mean, std in (
        ("DEFAULT", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ("none", manifest["mean"], manifest["std"]),
    ):
        seen = model_inputs(monkeypatch)
        opts = train.TrainOptions.from_dict({**run, "weights": weights, "input_size": 32})
        metrics = train.train(opts, demo_data, tmp_path / weights, threads=2, log=lambda *_: None)
        expected = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        assert torch.allclose(seen[-1], expected, atol=1e-5), weights  # the last pass: the whole test split
        assert metrics["inputs"]["mean"] == pytest.approx(mean) and metrics["inputs"]["input_size"] == 32
        portable = json.loads((tmp_path / weights / "model.json").read_text())  # what a receiver applies
        assert portable["mean"] == pytest.approx(mean) and portable["std"] == pytest.approx(std)


# ---------------------------------------------------------------- the training benchmark
def test_train_bench_runs_and_prints_the_ratios(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_bench.py"), "--images", "64", "--rounds", "1",
         "--batch-size", "32", "--workers", "0", "--threads", "1", "--model", "simplecnn"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for loop in ("pipeline", "bare", "seed-style"):
        assert any(line.split()[:1] == [loop] and "images/s" in line for line in lines), loop
    ratios = [line for line in lines if line.startswith("pipeline / ")]
    assert len(ratios) == 2 and all(float(line.split()[-1].rstrip("×")) > 0 for line in ratios)
    assert json.dumps(lines)  # plain text lines only


def test_evaluation_batches_hold_at_most_64_mb_of_floats_but_never_fewer_than_a_training_batch():
    """At 224 px an image is 600 KB of floats: 500 of them would be 300 MB on top of training."""
    asked = []

    def recording(data):
        in_order = data.in_order
        data.in_order = lambda batch_size: asked.append(batch_size) or in_order(batch_size)
        return data

    model = train.build_network(train.TrainOptions(model="simplecnn"), 10, torch.device("cpu"))
    for side, batch_size, expected in ((224, 8, 111), (224, 128, 128), (32, 64, 500)):
        images = np.zeros((3, side, side, 3), np.uint8)
        data = recording(batches.DeviceData(images, np.zeros(3, int), (0.5,) * 3, (0.2,) * 3, "cpu"))
        train.evaluate(model, data, train.TrainOptions(model="simplecnn", batch_size=batch_size))
        assert asked[-1] == expected, (side, batch_size, asked)
