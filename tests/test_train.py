"""The training library: options, augmentation, schedules, determinism and resume."""

import hashlib
import json

import pytest
import torch
from labbook import train

TIMING_KEYS = ("train_seconds", "images_per_s")


def without_timings(metrics: dict) -> dict:
    """metrics.json minus wall-clock numbers, which differ between any two runs."""
    kept = {k: v for k, v in metrics.items() if k not in TIMING_KEYS + ("resumed_after_epoch",)}
    kept["history"] = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in metrics["history"]]
    return kept


def weights_hash(path) -> str:
    state = torch.load(path, weights_only=True)
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].cpu().numpy().tobytes())
    return digest.hexdigest()


def test_options_reject_unknown_keys_wrong_types_and_choices():
    with pytest.raises(ValueError, match="'lrr'"):
        train.TrainOptions.from_dict({"lrr": 0.1})
    with pytest.raises(TypeError, match="'epochs' must be int"):
        train.TrainOptions.from_dict({"epochs": 2.5})
    with pytest.raises(TypeError, match="'flip' must be bool"):
        train.TrainOptions.from_dict({"flip": "yes"})
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        train.TrainOptions.from_dict({"optimizer": "rmsprop"})
    opts = train.TrainOptions.from_dict({"lr": 1, "model": "simplecnn"})
    assert opts.lr == 1.0 and isinstance(opts.lr, float)


def test_random_crop_translates_each_image_within_the_padding():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = train.random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):
        found = False
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        for dy in range(5):
            for dx in range(5):
                found |= torch.equal(out[i], padded[:, dy : dy + 8, dx : dx + 8])
        assert found, "each output must be the padded input cropped at one offset"
    assert torch.equal(train.random_crop(x, 0, torch.Generator()), x)


def test_augmentation_is_reproducible_from_the_generator_and_flips_about_half():
    x = torch.rand(1000, 3, 8, 8)
    a = train.random_flip(x, torch.Generator().manual_seed(1))
    b = train.random_flip(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    flipped = (a != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < flipped < 0.6
    cut = train.cutout(torch.ones(4, 3, 8, 8), 4, torch.Generator().manual_seed(0))
    zeros_per_image = (cut[:, 0] == 0).flatten(1).sum(1)
    assert (zeros_per_image > 0).all() and (zeros_per_image <= 16).all()


def test_lr_schedules():
    def factors(**kw):
        opts = train.TrainOptions(epochs=10, **kw)
        return [train.lr_factor(opts, s, 100, 10) for s in range(100)]

    assert set(factors(schedule="constant")) == {1.0}
    cosine = factors(schedule="cosine")
    assert cosine[0] == 1.0 and cosine[-1] < 0.01 and cosine == sorted(cosine, reverse=True)
    onecycle = factors(schedule="onecycle", warmup_epochs=2)
    assert onecycle[0] == pytest.approx(1 / 20) and onecycle[19] == 1.0 and onecycle[-1] < 0.02


def test_choose_device_falls_back_to_cpu_and_rejects_missing_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert train.choose_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train.choose_device("cuda:1")


TINY = {"model": "cifarnet", "epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.003, "crop_padding": 2,
        "deterministic": True, "device": "cpu", "log_every": 5}  # fmt: skip


def test_training_writes_its_outputs_and_learns(demo_data, tmp_path):
    # 8 epochs reach 0.58-0.66 test accuracy over seeds 0-2 (5 epochs: 0.41-0.46): a floor of
    # 0.4 leaves room for a harmless change yet fails a broken loop, augmentation or schedule.
    opts = train.TrainOptions.from_dict({**TINY, "epochs": 8})
    metrics = train.train(opts, demo_data, tmp_path, seed=0, threads=2, log=lambda *_: None)
    for name in ("model.pt", "metrics.json", "predictions.npz"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "checkpoint.pt").exists(), "a finished run needs no checkpoint"
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(metrics["history"]) == 8
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    assert metrics["test_acc"] > 0.4, "ten balanced classes: chance is 0.1"
    assert metrics["parameters"]["total"] == 145_578
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] == metrics["test_acc"]


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
