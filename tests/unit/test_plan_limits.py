"""Wall time and memory each step asks a cluster for (labbook/plan/limits.py): estimated from the
config, true to the models, overridable per run."""

import functools

import pytest
import torch
from builders import image_folder
from labbook import models
from labbook.plan import datasets, limits
from labbook.plan.kinds import cifar10 as cifar10_kind

DEMO = {"name": "shapes", "kind": "demo", "train_size": 4000, "test_size": 1000}
CIFAR10 = {"name": "cifar10", "kind": "cifar10"}


def options(**values):
    return {"model": "cifarnet", "epochs": 10, "train_subset": 0, "input_size": 0, "device": "auto", **values}


def counted(model: torch.nn.Module, side: int) -> float:
    """Forward GFLOPs of one side×side image, counted over its convolutions and linear layers."""
    macs = 0

    def hook(layer, _, out):
        nonlocal macs
        if isinstance(layer, torch.nn.Conv2d):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            macs += out[0].numel() * layer.in_channels // layer.groups * kernel
        elif isinstance(layer, torch.nn.Linear):
            macs += layer.in_features * layer.out_features

    for layer in model.modules():
        layer.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    return 2 * macs / 1e9


@pytest.mark.parametrize("name", sorted({*models.LABBOOK_MODELS, *limits.MODELS}))
def test_the_cost_table_matches_every_model(name):
    """A new or changed model of labbook's own must come with its row here, or estimates lie
    (torchvision's others are estimated as VGG16)."""
    assert name in limits.MODELS, f"limits.MODELS has no row for model {name!r}"
    row = limits.MODELS[name]
    model = models.build(name, 10)
    for side in (32,) if name == "cifarnet" else (32, 64):  # cifarnet takes 32×32 only
        table = row["area_gflops"] * (side / 32) ** 2 + row["fixed_gflops"]
        assert table == pytest.approx(counted(model, side), rel=0.05), side
    assert row["parameters_m"] == pytest.approx(models.count_parameters(model)["total"] / 1e6, rel=0.05)


def test_training_time_follows_epochs_images_model_and_input_size():
    cifar = datasets.size(CIFAR10)
    epoch = limits.epoch_seconds(options(), cifar)
    vgg = limits.epoch_seconds(options(model="vgg16"), cifar)
    assert vgg > 3 * epoch
    vgg_224 = limits.epoch_seconds(options(model="vgg16", input_size=224), cifar)
    assert vgg_224 == pytest.approx(vgg * 35, rel=0.1)  # (224/32)² = 49 on the convolutions
    assert limits.epoch_seconds(options(train_subset=5000), cifar) < epoch / 2
    assert limits.epoch_seconds(options(device="cpu"), cifar) > 10 * epoch
    base = limits.train(options(epochs=50), CIFAR10, {})["runtime"]
    assert limits.train(options(epochs=200), CIFAR10, {})["runtime"] > base
    assert limits.train(options(epochs=50, train_subset=1000), CIFAR10, {})["runtime"] < base
    assert limits.train(options(epochs=50), DEMO, {})["runtime"] < base
    for run in (options(), options(model="vgg16", input_size=224), options(device="cpu")):
        runtime = limits.train(run, CIFAR10, {})["runtime"]
        assert runtime % 5 == 0
        assert (
            runtime
            >= limits.START_MINUTES + limits.SAFETY * run["epochs"] * limits.epoch_seconds(run, cifar) / 60
        )


def test_memory_holds_the_images_and_the_weights():
    base = limits.BASE_MB["train"]
    assert limits.train(options(), DEMO, {})["mem_mb"] >= base
    assert limits.train(options(model="vgg16"), DEMO, {})["mem_mb"] >= base + 4 * 134 * 4
    big_images = {"name": "big", "kind": "demo", "train_size": 100000, "test_size": 10000, "image_size": 96}
    needed = 3 * 110000 * 96 * 96 * 3 / 1e6  # file, array and tensor copies, MB
    assert limits.prepare_data(big_images, threads=4)["mem_mb"] >= needed
    # an image folder is written chunk by chunk: a 1.28M-image folder at 224 px (193 GB decoded)
    # asks for its base and a fixed margin, not three copies
    folder = {"name": "big", "kind": "imagefolder", "root": "/nowhere", "image_size": 224}
    huge = limits.prepare_data(folder, threads=8, size=(1_281_167, 50_000, 224))["mem_mb"]
    assert huge == 4000, "2000 base + 1000 for the chunks + 11 MB of labels, rounded up"
    # Training holds the images in host memory only resident on a CPU, one copy per process; on a
    # GPU they are loaded in chunks, streamed a few batches at a time.
    split_mb = 110000 * 96 * 96 * 3 / 1e6
    on_gpu = limits.train(options(), big_images, {})["mem_mb"]
    assert on_gpu < base + split_mb
    resident_cpu = limits.train(options(device="cpu", data_placement="resident"), big_images, {})["mem_mb"]
    assert resident_cpu >= base + split_mb
    assert limits.train(options(device="cpu", data_placement="streamed"), big_images, {})["mem_mb"] == on_gpu
    two = limits.train(options(device="cpu", data_placement="resident", gpus=2), big_images, {})["mem_mb"]
    assert two >= 2 * (base + split_mb), "each process its own Python, torch and copy"
    assert limits.train(options(gpus=2), big_images, {})["mem_mb"] >= 2 * base


def test_a_runs_own_runtime_and_mem_mb_replace_the_estimate():
    assert limits.train(options(), CIFAR10, {"runtime": 600, "mem_mb": 64000}) == {
        "runtime": 600,
        "mem_mb": 64000,
    }
    only_time = limits.train(options(), CIFAR10, {"runtime": 7})
    assert only_time == {"runtime": 7, "mem_mb": limits.train(options(), CIFAR10, {})["mem_mb"]}


# Black 8×8 PNGs, and in each class folder a hidden file and notes: only the images count.
counted_folder = functools.partial(
    image_folder, colour=(0, 0, 0), size=(8, 8), extras={".hidden.png": b"", "notes.txt": b"not an image"}
)


def test_imagefolder_size_is_counted_from_its_files(tmp_path):
    counted_folder(tmp_path / "a", per_class={"train": {"x": 6, "y": 4}, "val": {"x": 2, "y": 3}})
    assert datasets.size({"name": "a", "kind": "imagefolder", "root": str(tmp_path / "a")}) == (
        10,
        5,
        32,
    )
    counted_folder(tmp_path / "b", per_class={"train": {"x": 10, "y": 10}})
    spec = {
        "name": "b",
        "kind": "imagefolder",
        "root": str(tmp_path / "b"),
        "holdout": 0.25,
        "image_size": 64,
    }
    assert datasets.size(spec) == (15, 5, 64)
    missing = {"name": "c", "kind": "imagefolder", "root": str(tmp_path / "nowhere")}
    assert datasets.size(missing) == (0, 0, 32)  # the data step reports it, not the DAG
    assert limits.train(options(), missing, {})["runtime"] >= limits.START_MINUTES


def test_only_a_data_step_that_downloads_is_retried_by_its_rule():
    assert datasets.retries(CIFAR10) == cifar10_kind.DOWNLOAD_RETRIES > 0  # download: true by default
    assert datasets.retries({**CIFAR10, "download": False}) is None
    assert datasets.retries(DEMO) is None


def test_predict_asks_for_its_images_and_the_largest_model(tmp_path):
    counted_folder(tmp_path / "new", per_class={"photos": {"a": 30, "b": 20}})
    found = limits.predict(str(tmp_path / "new"), side=224, threads=4)
    none_yet = limits.predict(str(tmp_path / "nowhere"), side=224, threads=4)
    assert found["mem_mb"] >= limits.BASE_MB["train"] + 3 * 50 * 224 * 224 * 3 / 1e6 + 4 * 134
    assert none_yet["mem_mb"] >= limits.BASE_MB["train"] + 4 * 134
    many = {"name": "many", "kind": "demo", "train_size": 100000, "test_size": 100000, "image_size": 224}
    thousands = tmp_path / "thousands"
    thousands.mkdir()
    for i in range(3000):
        (thousands / f"{i}.jpg").write_bytes(b"")  # counted by name; the step decodes them
    assert limits.predict(str(thousands), side=224, threads=1)["runtime"] > none_yet["runtime"]
    assert limits.job("predict", many, (1, 1, 224), 1, images=str(thousands))["mem_mb"] > found["mem_mb"]
