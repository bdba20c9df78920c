"""Training promises checked by their effects: the schedule step by step, TensorBoard's contents
(HParams included), the train subset, the choice made on val (keep, patience) and test measured
once, what a checkpoint holds and resumes into, and the options the shipped configs use."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from builders import REPO, train_killed_after, weights_hash, without_timings
from labbook import arrays, batches, export, train
from labbook.plan import options as training_options
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

# Small and quick: 96 training images in batches of 32 are three steps an epoch.
QUICK = {"model": "simplecnn", "epochs": 3, "batch_size": 32, "train_subset": 96, "optimizer": "sgd",
         "lr": 0.1, "device": "cpu", "deterministic": True, "log_every": 1}  # fmt: skip


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """1000 train, 200 val (held out of 1200 generated training images) and 200 test demo images."""
    from labbook import prepare

    out = tmp_path_factory.mktemp("demo-data-splits")
    prepare.prepare({"name": "shapes", "kind": "demo", "train_size": 1200, "val_size": 200, "test_size": 200},
                    out)  # fmt: skip
    return out


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
    assert set(logged) == {"train/loss", "train/lr", "hparam/val_accuracy", "hparam/test_accuracy"} | {
        f"epoch/{key}" for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s")
    }, "per epoch: val, never test"
    assert sorted(logged["train/loss"]) == [2, 4, 6, 8]
    for step, loss in metrics["step_losses"]:
        assert logged["train/loss"][step] == pytest.approx(loss, rel=1e-6)
    for record in metrics["history"]:
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert logged[f"epoch/{key}"][record["epoch"]] == pytest.approx(record[key], rel=1e-6), key
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["augmented_train_images"]
    grid = events.Images("augmented_train_images")
    assert [g.step for g in grid] == [0] and grid[0].width >= 32 and grid[0].height >= 32


def test_tensorboard_hparams_are_in_the_runs_own_event_file(demo_data, tmp_path):
    """The run's options and final val and test accuracy as HParams, beside its epoch scalars in
    tensorboard/ itself: no sub-run folder (SummaryWriter.add_hparams would make one)."""
    metrics, _ = run(demo_data, tmp_path, epochs=2, keep="best", patience=1)
    folder = tmp_path / "tensorboard"
    assert [p.name for p in folder.iterdir() if p.is_dir()] == [], "one folder: the run's"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    assert set(content) == {
        f"_hparams_/{name}" for name in ("experiment", "session_start_info", "session_end_info")
    }
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"hparam/val_accuracy", "hparam/test_accuracy"}
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    logged = {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
    given = train.TrainOptions.from_dict({**QUICK, "epochs": 2, "keep": "best", "patience": 1})
    assert logged == {"seed": 0, **given.to_dict(), "model_args": "{}"}, "every option (dicts as text)"
    assert logged["keep"] == "best" and logged["lr"] == 0.1 and logged["epochs"] == 2
    final = scalars(tmp_path)
    assert "epoch/val_acc" in final, "beside the epoch scalars"
    assert list(final["hparam/val_accuracy"].values()) == [pytest.approx(metrics["val_acc"])]
    assert list(final["hparam/test_accuracy"].values()) == [pytest.approx(metrics["test_acc"])]


def test_train_subset_trains_on_that_many_images(demo_data, tmp_path):
    subset, _ = run(demo_data, tmp_path / "subset", epochs=1, train_subset=70)
    assert subset["train_images"] == 70 and subset["test_images"] == 200 and subset["val_images"] == 200
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
    assert train.TrainOptions(keep="best").fingerprint(0, "data-a") != reference, "keep changes the outputs"
    assert train.TrainOptions(patience=2).fingerprint(0, "data-a") != reference, "patience changes the epochs"
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
    best = {k: v.clone() for k, v in saved.model.state_dict().items()}  # the weights before the steps
    for _ in range(3):  # a few steps: optimizer moments, schedule position, both generators moved on
        torch.randperm(50, generator=saved.generator)
        saved.optimizer.zero_grad()
        saved.model(x).sum().backward()
        saved.optimizer.step()
        saved.scheduler.step()
    saved.epoch, saved.history, saved.step_losses = 1, [{"epoch": 1, "val_acc": 0.5}], [[3, 1.25]]
    saved.best_epoch, saved.best_val_acc, saved.best_weights, saved.since_best = 1, 0.5, best, 2
    saved.stopped_early = 1
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
    assert (resumed.best_epoch, resumed.best_val_acc, resumed.since_best) == (1, 0.5, 2)
    assert resumed.stopped_early == 1
    assert resumed.best_weights.keys() == best.keys()
    assert all(torch.equal(resumed.best_weights[k], v) for k, v in best.items()), "the best epoch's weights"

    foreign, logs = fresh_state(2), []
    before = foreign.generator.get_state()
    assert not foreign.load(path, "another run", log=logs.append)
    assert foreign.epoch == 0 and torch.equal(foreign.generator.get_state(), before)
    assert (foreign.best_epoch, foreign.best_val_acc, foreign.best_weights) == (0, None, None)
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
    for key in ("train_loss", "val_loss", "val_acc"):
        assert last["history"][0][key] == pytest.approx(plain["history"][0][key], rel=1e-3, abs=1e-4)
    weights = torch.load(tmp_path / "last" / "model.pt", weights_only=True)
    conv = next(w for w in weights.values() if w.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    plain_conv = next(
        w for w in torch.load(tmp_path / "plain" / "model.pt", weights_only=True).values() if w.dim() == 4
    )
    assert not plain_conv.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- the choice on val, test once
def fabricated_val(monkeypatch, accuracy: list) -> dict:
    """Epoch e's val accuracy becomes accuracy[e - 1] (training, val loss and test stay real), so
    a test states which epoch is best; by the epoch, so a resumed run gets the same. Returns
    {epoch: the weights val was evaluated on}, filled as training goes."""
    weights, current = {}, {}
    record_epoch, evaluate = train.record_epoch, train.evaluate

    def fabricated_record_epoch(state, trained, val_data, *args):
        current.update(epoch=state.epoch, val=val_data)
        try:
            return record_epoch(state, trained, val_data, *args)
        finally:
            current.clear()

    def fabricated_evaluate(model, data, *args):
        loss, acc, logits = evaluate(model, data, *args)
        if current and data is current["val"]:
            weights[current["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}
            acc = accuracy[current["epoch"] - 1]
        return loss, acc, logits

    monkeypatch.setattr(train, "record_epoch", fabricated_record_epoch)
    monkeypatch.setattr(train, "evaluate", fabricated_evaluate)
    return weights


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def saved_weights(out_dir) -> dict:
    return torch.load(Path(out_dir) / "model.pt", weights_only=True)


def the_test_split(data_dir, metrics) -> "batches.DeviceData":
    inputs = metrics["inputs"]
    images, labels = arrays.load_split(data_dir, "test")
    return batches.DeviceData(images, labels, inputs["mean"], inputs["std"], "cpu", inputs["input_size"])


def test_keep_best_keeps_the_epoch_of_the_highest_val_accuracy_everywhere(demo_data, tmp_path, monkeypatch):
    """keep: best with val peaking in epoch 2 of 4: model.pt, model.pt2, predictions.npz and the
    final numbers are epoch 2's, test evaluated on those weights; keep: last, the same training,
    keeps epoch 4. Patience 0 (the default) never stops, however long without a new best."""
    weights = fabricated_val(monkeypatch, [0.3, 0.7, 0.5, 0.6])
    best, logs = run(demo_data, tmp_path / "best", epochs=4, keep="best")
    assert [h["val_acc"] for h in best["history"]] == [0.3, 0.7, 0.5, 0.6] and best["stopped_early"] is None
    assert (best["kept"], best["best_epoch"], best["chosen_on"]) == ("best", 2, "val")
    assert (best["val_acc"], best["val_loss"]) == (0.7, best["history"][1]["val_loss"])
    assert not same_weights(weights[2], weights[4]), "the epochs' weights differ: which one is kept shows"
    assert same_weights(saved_weights(tmp_path / "best"), weights[2])
    assert any(line.startswith("kept epoch 2 (best)") for line in logs)

    # test: once, of the kept weights; predictions.npz and the portable model are of them too
    model = train.build_network(train.TrainOptions.from_dict(QUICK), 10, torch.device("cpu"))
    model.load_state_dict(saved_weights(tmp_path / "best"))
    test = the_test_split(demo_data, best)
    loss, accuracy, logits = train.evaluate(model, test, train.TrainOptions.from_dict(QUICK))
    assert (best["test_loss"], best["test_acc"]) == pytest.approx((loss, accuracy))
    assert np.allclose(np.load(tmp_path / "best" / "predictions.npz")["logits"], logits.numpy(), atol=1e-5)
    program, _ = export.load_portable(tmp_path / "best")
    assert torch.allclose(program(test.images), logits, atol=1e-4), "model.pt2 is the kept network"

    last, _ = run(demo_data, tmp_path / "last", epochs=4, keep="last")
    assert last["history"] == [{**h, **{k: last["history"][i][k] for k in ("train_seconds", "images_per_s")}}
                               for i, h in enumerate(best["history"])], "keep changes what is kept, not training"  # fmt: skip
    assert (last["kept"], last["best_epoch"], last["val_acc"]) == ("last", 4, 0.6)
    assert same_weights(saved_weights(tmp_path / "last"), weights[4])
    assert last["test_acc"] != best["test_acc"] or last["test_loss"] != best["test_loss"]


def test_patience_stops_after_that_many_epochs_without_a_new_best_and_a_tie_is_none(
    demo_data, tmp_path, monkeypatch
):
    """Best in epoch 2; epoch 3 only ties it (the earlier epoch stays best), epoch 4 is worse:
    patience 2 stops after epoch 4, never seeing epoch 5's better val accuracy."""
    weights = fabricated_val(monkeypatch, [0.3, 0.5, 0.5, 0.4, 0.9, 0.9])
    metrics, logs = run(demo_data, tmp_path / "stopped", epochs=6, patience=2, keep="best")
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4] and metrics["stopped_early"] == 4
    assert metrics["best_epoch"] == 2 and metrics["val_acc"] == 0.5, "a tie keeps the earlier epoch"
    assert same_weights(saved_weights(tmp_path / "stopped"), weights[2])
    assert [line for line in logs if line.startswith("stopping early")] == [
        "stopping early after epoch 4: 2 epochs without a new best val accuracy "
        "(best 0.5000, epoch 2; patience 2)"
    ]
    json_metrics = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert (json_metrics["stopped_early"], json_metrics["options"]["patience"]) == (4, 2)
    # patience running out only with the last epoch: the run ended, it did not stop early
    ended, _ = run(demo_data, tmp_path / "ended", epochs=4, patience=2)
    assert len(ended["history"]) == 4 and ended["stopped_early"] is None and ended["best_epoch"] == 4


def test_a_run_killed_after_an_epoch_resumes_to_the_same_choice_weights_and_stop(
    demo_data, tmp_path, monkeypatch
):
    """keep: best and patience, killed after epoch 3 (best: epoch 2, one epoch since, the network
    in memory epoch 3's) and after epoch 4 (stopped early, outputs not yet written): each resumes
    from its checkpoint to the uninterrupted run's metrics and kept weights."""
    fabricated_val(monkeypatch, [0.2, 0.5, 0.4, 0.5, 0.9, 0.9])
    changes = {"epochs": 6, "patience": 2, "keep": "best"}
    whole, _ = run(demo_data, tmp_path / "whole", **changes)
    assert (whole["best_epoch"], whole["stopped_early"], len(whole["history"])) == (2, 4, 4)
    for killed_after in (3, 4):
        out = tmp_path / f"killed-after-{killed_after}"
        train_killed_after(monkeypatch, killed_after, lambda out=out: run(demo_data, out, **changes))
        assert not (out / "model.pt").exists()
        resumed, logs = run(demo_data, out, **changes)
        assert resumed["resumed_after_epoch"] == killed_after and any("resuming" in line for line in logs)
        assert without_timings(resumed) == without_timings(whole)
        assert weights_hash(out / "model.pt") == weights_hash(tmp_path / "whole" / "model.pt")


def test_keep_best_of_a_run_that_diverges_keeps_the_best_finite_epoch(demo_data, tmp_path, monkeypatch):
    """Epoch 3 diverges in its first step (its val accuracy said to be the highest: a diverged
    epoch is no candidate): the run stops there as ever, and keeps epoch 2's finite network."""
    weights = fabricated_val(monkeypatch, [0.4, 0.6, 0.9])
    steps, train_step = [], train.train_step

    def diverging_step(model, *args):
        loss, out = train_step(model, *args)
        steps.append(len(steps) + 1)
        if len(steps) == 7:  # three steps an epoch: epoch 3's first
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.fill_(math.nan)
            loss = torch.tensor(math.nan)
        return loss, out

    monkeypatch.setattr(train, "train_step", diverging_step)
    metrics, logs = run(demo_data, tmp_path, keep="best")
    assert metrics["diverged"]["epoch"] == 3 and len(metrics["history"]) == 3
    assert (metrics["best_epoch"], metrics["val_acc"]) == (2, 0.6)
    assert same_weights(saved_weights(tmp_path), weights[2])
    assert all(torch.isfinite(v).all() for v in saved_weights(tmp_path).values())
    assert math.isfinite(metrics["test_loss"]) and metrics["test_acc"] > 0
    [warning] = [line for line in logs if line.startswith("WARNING:")]
    assert "the outputs hold epoch 2's network, the best on val (keep: best)" in warning


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
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
    assert math.isfinite(metrics["test_loss"])
    assert metrics["options"] == {**train.dataclasses.asdict(opts), **smoke}
    if opts.schedule != "constant":
        assert record["lr"] == pytest.approx(0.0), "cosine and onecycle end at zero"


def test_input_size_reaches_the_model(demo_data, tmp_path):
    """simplecnn pools globally and takes any size; cifarnet's linear layer expects 32×32, so a
    resize to 40 that reaches it is a shape error (and proves the resize happened)."""
    resized, _ = run(demo_data, tmp_path / "simple", epochs=1, input_size=48)
    assert math.isfinite(resized["history"][0]["val_loss"])
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        run(demo_data, tmp_path / "cifarnet", model="cifarnet", epochs=1, input_size=40)
    stored_size, _ = run(demo_data, tmp_path / "same", model="cifarnet", epochs=1, input_size=32)
    assert stored_size["options"]["input_size"] == 32
