"""Training promises checked by their effects: the schedule step by step, TensorBoard's contents,
the train subset, what a checkpoint holds and resumes into, and the options the shipped configs use."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from builders import REPO
from labbook import train
from labbook.plan import options as training_options
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# Small and quick: 96 training images in batches of 32 are three steps an epoch.
QUICK = {"model": "simplecnn", "epochs": 3, "batch_size": 32, "train_subset": 96, "optimizer": "sgd",
         "lr": 0.1, "device": "cpu", "deterministic": True, "log_every": 1}  # fmt: skip


def run(data_dir, out_dir, seed=0, **changes):
    opts = train.TrainOptions.from_dict({**QUICK, **changes})
    logs = []
    # one thread: quick, and steady on a machine whose cores are shared
    metrics = train.train(opts, data_dir, out_dir, seed=seed, threads=1, log=logs.append)
    return metrics, logs


def scalars(out_dir) -> dict:
    """{tag: {step: value}} read back from the run's TensorBoard event files."""
    events = EventAccumulator(str(Path(out_dir) / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_lr_factor_by_hand():
    opts = train.TrainOptions(schedule="cosine", warmup_epochs=2)  # 10 steps an epoch, 100 in all
    factor = [train.lr_factor(opts, step, 100, 10) for step in range(101)]
    assert factor[0] == pytest.approx(1 / 20) and factor[9] == pytest.approx(10 / 20)
    assert factor[19] == 1.0 and factor[20] == 1.0
    assert factor[60] == pytest.approx(0.5) and factor[100] == pytest.approx(0.0)
    assert factor[40] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    onecycle = train.TrainOptions(schedule="onecycle", warmup_epochs=2)
    assert train.lr_factor(onecycle, 60, 100, 10) == pytest.approx(0.5)
    assert train.lr_factor(onecycle, 80, 100, 10) == pytest.approx(0.25)
    assert train.lr_factor(onecycle, 100, 100, 10) == 0.0
    assert factor[20:] == sorted(factor[20:], reverse=True), "after the warm-up, only down"
    constant = train.TrainOptions(schedule="constant", warmup_epochs=0.5)
    assert [train.lr_factor(constant, s, 100, 10) for s in (0, 4, 5, 99)] == [0.2, 1.0, 1.0, 1.0]
    assert {train.lr_factor(train.TrainOptions(schedule="constant"), s, 100, 10) for s in range(100)} == {1.0}
    assert train.lr_factor(train.TrainOptions(schedule="cosine"), 0, 100, 10) == 1.0
    # one step after the warm-up: it starts the decay at 1 and ends it at 0
    short = train.TrainOptions(schedule="cosine", warmup_epochs=1)  # 3 warm-up steps of 4
    assert [train.lr_factor(short, s, 4, 3) for s in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 0])


@pytest.mark.parametrize(
    "schedule, warmup", [("cosine", 1.0), ("onecycle", 0.7), ("constant", 0.0), ("constant", 1.0)]
)
def test_logged_learning_rate_follows_the_schedule_step_by_step(demo_data, tmp_path, schedule, warmup):
    metrics, _ = run(demo_data, tmp_path, schedule=schedule, warmup_epochs=warmup)
    opts = train.TrainOptions.from_dict({**QUICK, "schedule": schedule, "warmup_epochs": warmup})
    logged = scalars(tmp_path)["train/lr"]
    assert sorted(logged) == list(range(1, 10)), "one value per optimizer step"
    for step, lr in logged.items():
        # logged after the step: the rate the next step uses
        assert lr == pytest.approx(0.1 * train.lr_factor(opts, step, 9, 3), rel=1e-6), step
    epoch_lr = [h["lr"] for h in metrics["history"]]
    assert epoch_lr == pytest.approx([0.1 * train.lr_factor(opts, s, 9, 3) for s in (3, 6, 9)])
    if schedule != "constant":
        assert epoch_lr[-1] < epoch_lr[0] * 0.5


def test_tensorboard_holds_the_losses_rates_metrics_and_an_image_grid(demo_data, tmp_path):
    metrics, _ = run(demo_data, tmp_path, log_every=2)
    logged = scalars(tmp_path)
    assert set(logged) == {"train/loss", "train/lr"} | {
        f"epoch/{key}" for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s")
    }
    assert sorted(logged["train/loss"]) == [2, 4, 6, 8]
    for step, loss in metrics["step_losses"]:
        assert logged["train/loss"][step] == pytest.approx(loss, rel=1e-6)
    for record in metrics["history"]:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert logged[f"epoch/{key}"][record["epoch"]] == pytest.approx(record[key], rel=1e-6), key
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["augmented_train_images"]
    grid = events.Images("augmented_train_images")
    assert [g.step for g in grid] == [0] and grid[0].width >= 32 and grid[0].height >= 32


def test_train_subset_trains_on_that_many_images(demo_data, tmp_path):
    subset, _ = run(demo_data, tmp_path / "subset", epochs=1, train_subset=70)
    assert subset["train_images"] == 70 and subset["test_images"] == 200
    assert [s for s, _ in subset["step_losses"]] == [1, 2, 3], "ceil(70 / 32) steps"
    everything, _ = run(demo_data, tmp_path / "all", epochs=1, train_subset=0, batch_size=250)
    assert everything["train_images"] == 1000
    too_big, _ = run(demo_data, tmp_path / "big", epochs=1, train_subset=5000, batch_size=250)
    assert too_big["train_images"] == 1000


def test_fingerprint_covers_options_seed_data_and_training_code(tmp_path, monkeypatch):
    opts = train.TrainOptions()
    reference = opts.fingerprint(0, "data-a")
    assert opts.fingerprint(0, "data-a") == reference
    assert train.TrainOptions(lr=0.02).fingerprint(0, "data-a") != reference
    assert opts.fingerprint(1, "data-a") != reference
    assert opts.fingerprint(0, "data-b") != reference
    code = tmp_path / "labbook"
    shutil.copytree(Path(train.__file__).parent, code)
    monkeypatch.setattr(training_options, "__file__", str(code / "plan" / "options.py"))
    assert opts.fingerprint(0, "data-a") == reference, "the same code"
    for module in ("train.py", "models.py", "plan/options.py"):
        original = (code / module).read_text()
        (code / module).write_text(original + "\n# changed\n")
        assert opts.fingerprint(0, "data-a") != reference, f"a change to {module}"
        (code / module).write_text(original)


def test_a_checkpoint_resumes_only_into_the_same_data_and_code(demo_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(demo_data, out, epochs=1, keep_checkpoint=True)
    again, logs = run(demo_data, out, epochs=1, keep_checkpoint=True)
    assert again["resumed_after_epoch"] == 1 and any("resuming" in line for line in logs)

    other_data = tmp_path / "other-data"
    shutil.copytree(demo_data, other_data)
    manifest = json.loads((other_data / "manifest.json").read_text())
    manifest["source_hash"] = "0" * 64  # the same arrays, said to come from other sources
    (other_data / "manifest.json").write_text(json.dumps(manifest))
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    fresh, logs = run(other_data, moved, epochs=1, keep_checkpoint=True)
    assert fresh["resumed_after_epoch"] == 0 and not any("resuming" in line for line in logs)

    code = tmp_path / "labbook"
    shutil.copytree(Path(train.__file__).parent, code)
    (code / "train.py").write_text((code / "train.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(training_options, "__file__", str(code / "plan" / "options.py"))
    shutil.copytree(out, tmp_path / "code-changed")
    fresh, _ = run(demo_data, tmp_path / "code-changed", epochs=1, keep_checkpoint=True)
    assert fresh["resumed_after_epoch"] == 0


def fresh_state(seed: int) -> "train.TrainState":
    """A run's TrainState before its first step (a small network: the state, not the training, is tested)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Dropout(0.5), torch.nn.Linear(5, 3))
    opts = train.TrainOptions(optimizer="adamw", schedule="cosine", epochs=3)
    return train.TrainState.start(model, opts, 4, torch.Generator().manual_seed(seed), torch.device("cpu"))


def test_a_checkpoint_restores_the_random_state_and_all_else_it_holds(tmp_path):
    """TrainState.save then load into a fresh state: the next draws of the data generator and of
    torch's global generator (dropout) are those the saved run would have made, and the weights,
    optimizer, schedule, history and epoch are the saved ones."""
    saved = fresh_state(0)
    x = torch.randn(8, 6)
    for _ in range(3):  # a few steps: optimizer moments, schedule position, both generators moved on
        torch.randperm(50, generator=saved.generator)
        saved.optimizer.zero_grad()
        saved.model(x).sum().backward()
        saved.optimizer.step()
        saved.scheduler.step()
    saved.epoch, saved.history, saved.step_losses = 1, [{"epoch": 1, "test_acc": 0.5}], [[3, 1.25]]
    path = tmp_path / "checkpoint.pt"
    saved.save(path, "this run")
    expected = (torch.randperm(50, generator=saved.generator), torch.rand(4), saved.model(x))

    logs = []
    resumed = fresh_state(1)  # other weights, other generators
    torch.manual_seed(99)
    assert resumed.load(path, "this run", log=logs.append)
    assert logs == [f"resuming from {path} after epoch 1"]
    assert torch.equal(torch.randperm(50, generator=resumed.generator), expected[0]), "the data generator"
    assert torch.equal(torch.rand(4), expected[1]), "torch's global generator"
    assert torch.equal(resumed.model(x), expected[2]), "the weights, and dropout's draws"
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 3
    assert (
        resumed.scheduler.last_epoch == 3 and resumed.scheduler.get_last_lr() == saved.scheduler.get_last_lr()
    )
    assert (resumed.epoch, resumed.history, resumed.step_losses) == (1, saved.history, saved.step_losses)

    foreign, logs = fresh_state(2), []
    before = foreign.generator.get_state()
    assert not foreign.load(path, "another run", log=logs.append)
    assert foreign.epoch == 0 and torch.equal(foreign.generator.get_state(), before)
    assert len(logs) == 1 and "starts afresh" in logs[0]
    assert not fresh_state(3).load(tmp_path / "absent.pt", "this run", log=logs.append) and len(logs) == 1


def test_make_optimizer_builds_what_the_options_name():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    sgd = train.make_optimizer(
        train.TrainOptions(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-4), model.parameters()
    )
    assert type(sgd) is torch.optim.SGD
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        0.05,
        0.8,
        True,
        5e-4,
    )
    assert len(group["params"]) == 3, "frozen parameters are left out"
    plain = train.make_optimizer(train.TrainOptions(), model.parameters()).param_groups[0]
    assert plain["nesterov"] is False and plain["momentum"] == 0.9
    for name, kind in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        optimizer = train.make_optimizer(
            train.TrainOptions(optimizer=name, lr=0.003, weight_decay=0.01), model.parameters()
        )
        assert type(optimizer) is kind
        assert optimizer.param_groups[0]["lr"] == 0.003 and optimizer.param_groups[0]["weight_decay"] == 0.01


def smoothed_target_entropy(smoothing: float, classes: int) -> float:
    """The lowest cross-entropy a model can reach against label-smoothed targets."""
    true, other = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(true * math.log(true) + (classes - 1) * other * math.log(other))


def test_label_smoothing_keeps_the_train_loss_above_the_smoothed_targets_entropy(demo_data, tmp_path):
    """Memorizing 16 images drives plain cross-entropy near 0; with smoothing it cannot go below
    the entropy of the smoothed targets (0.50 for 0.1 over 10 classes)."""
    memorize = {"model": "cifarnet", "train_subset": 16, "batch_size": 16, "epochs": 25, "optimizer": "adam",
                "lr": 0.003, "crop_padding": 0, "flip": False, "log_every": 1000}  # fmt: skip
    plain, _ = run(demo_data, tmp_path / "plain", **memorize)
    smoothed, _ = run(demo_data, tmp_path / "smoothed", **memorize, label_smoothing=0.1)
    floor = smoothed_target_entropy(0.1, 10)
    assert plain["history"][-1]["train_loss"] < 0.1
    assert floor <= smoothed["history"][-1]["train_loss"] < floor + 0.15


def test_channels_last_changes_the_layout_not_the_numbers(demo_data, tmp_path):
    quick = {"model": "cifarnet", "epochs": 1, "log_every": 1000}
    plain, _ = run(demo_data, tmp_path / "plain", **quick)
    last, _ = run(demo_data, tmp_path / "last", **quick, channels_last=True)
    for key in ("train_loss", "test_loss", "test_acc"):
        assert last["history"][0][key] == pytest.approx(plain["history"][0][key], rel=1e-3, abs=1e-4)
    weights = torch.load(tmp_path / "last" / "model.pt", weights_only=True)
    conv = next(w for w in weights.values() if w.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    plain_conv = next(
        w for w in torch.load(tmp_path / "plain" / "model.pt", weights_only=True).values() if w.dim() == 4
    )
    assert not plain_conv.is_contiguous(memory_format=torch.channels_last)


def shipped_runs():
    """(config file, run name, its training options) for every run of every ready config: the
    defaults, under the config's `train:`, under the run's own values."""
    fields = {f.name for f in train.dataclasses.fields(train.TrainOptions)}
    found = []
    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        for name, run_options in config["runs"].items():
            own = {k: v for k, v in run_options.items() if k in fields}
            options = {**training_options.defaults(), **config.get("train", {}), **own}
            slow = [pytest.mark.slow] if options["model"] == "vgg16" else []  # ~10 s on a CPU
            found.append(pytest.param(options, id=f"{path.stem}-{name}", marks=slow))
    return found


@pytest.mark.parametrize("options", shipped_runs())
def test_the_shipped_configs_options_train_on_the_cpu(demo_data, tmp_path, options):
    """Every run of the ready configs, as configured (sgd + nesterov, onecycle, label smoothing,
    channels_last, input_size, bf16...), for one short epoch on the CPU. Only what cannot work
    offline or on a CPU changes: no downloaded weights, a tiny subset, fp16 (CUDA only)."""
    opts = train.TrainOptions.from_dict(options)  # the config's keys are all known options
    smoke = {**options, "epochs": 1, "train_subset": 64, "batch_size": 32, "device": "cpu", "weights": "none"}
    if smoke["precision"] == "fp16":
        smoke["precision"] = "bf16"
    if smoke["model"] == "vgg16":
        smoke["input_size"] = min(opts.input_size or 32, 32)  # VGG16's cost on a CPU grows with it
    metrics = train.train(
        train.TrainOptions.from_dict(smoke), demo_data, tmp_path, threads=1, log=lambda *_: None
    )
    record = metrics["history"][0]
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["test_loss"])
    assert metrics["options"] == {**train.dataclasses.asdict(opts), **smoke}
    if opts.schedule != "constant":
        assert record["lr"] == pytest.approx(0.0), "cosine and onecycle end at zero"


def test_input_size_reaches_the_model(demo_data, tmp_path):
    """simplecnn pools globally and takes any size; cifarnet's linear layer expects 32×32, so a
    resize to 40 that reaches it is a shape error (and proves the resize happened)."""
    resized, _ = run(demo_data, tmp_path / "simple", epochs=1, input_size=48)
    assert math.isfinite(resized["history"][0]["test_loss"])
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        run(demo_data, tmp_path / "cifarnet", model="cifarnet", epochs=1, input_size=40)
    stored_size, _ = run(demo_data, tmp_path / "same", model="cifarnet", epochs=1, input_size=32)
    assert stored_size["options"]["input_size"] == 32
