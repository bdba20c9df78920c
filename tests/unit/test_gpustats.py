"""GPU memory and utilization on record: faked CUDA calls for the GPU path, a real CPU training
for the path that says there was no GPU."""

import json
import time

import pytest
import torch
from labbook import gpustats, report, train

MIB = 1024 * 1024


class Writer:
    """What EpochStats writes to TensorBoard."""

    def __init__(self):
        self.scalars, self.texts = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_text(self, tag, text, step):
        self.texts.append((tag, text, step))


class FakeCuda:
    """torch.cuda's memory and NVML calls on a pretend 80 GiB GPU; each epoch sets the numbers."""

    def __init__(self, monkeypatch, nvml=True):
        self.allocated = self.reserved = 0
        self.utilization = 0
        self.resets = 0
        calls = {
            "reset_peak_memory_stats": self.reset,
            "max_memory_allocated": lambda device: self.allocated,
            "max_memory_reserved": lambda device: self.reserved,
            "utilization": self.read_utilization if nvml else self.no_nvml,
            "get_device_name": lambda device: "Fake GPU 80GB",
            "get_device_properties": lambda device: type("Props", (), {"total_memory": 80 * 1024 * MIB}),
        }
        for name, call in calls.items():
            monkeypatch.setattr(torch.cuda, name, call)

    def reset(self, device):
        self.resets += 1

    def read_utilization(self, device):
        return self.utilization

    def no_nvml(self, device):
        raise ModuleNotFoundError("nvidia-ml-py does not seem to be installed or it can't be imported.")


def run_epoch(stats, cuda, writer, epoch, allocated_mib, reserved_mib, utilization):
    stats.start()
    cuda.allocated, cuda.reserved, cuda.utilization = allocated_mib * MIB, reserved_mib * MIB, utilization
    time.sleep(0.05)  # a few utilization samples at 0.01 s
    return stats.finish(writer, epoch)


def test_each_epoch_records_its_own_peaks_and_mean_utilization(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    writer = Writer()
    stats = gpustats.EpochStats(torch.device("cuda"), sample_seconds=0.01)
    history = [
        {"epoch": 1, "gpu": run_epoch(stats, cuda, writer, 1, 1500, 2048, 90)},
        {"epoch": 2, "gpu": run_epoch(stats, cuda, writer, 2, 1200, 4096, 50)},
    ]
    assert cuda.resets == 2, "the peaks start afresh every epoch"
    assert history[0]["gpu"] == {
        "peak_allocated_mib": 1500,
        "peak_reserved_mib": 2048,
        "utilization_percent": 90,
    }
    assert history[1]["gpu"] == {
        "peak_allocated_mib": 1200,
        "peak_reserved_mib": 4096,
        "utilization_percent": 50,
    }
    assert ("gpu/peak_reserved_mib", 4096, 2) in writer.scalars
    assert ("gpu/utilization_percent", 90, 1) in writer.scalars
    assert writer.texts == []
    summary = stats.summary(history)
    assert summary == {
        "name": "Fake GPU 80GB",
        "total_mib": 80 * 1024,
        "peak_allocated_mib": 1500,
        "peak_reserved_mib": 4096,
        "utilization_percent": 70,
        "note": "",
    }


def test_without_nvml_memory_is_still_recorded_and_the_note_says_why_utilization_is_not(monkeypatch):
    cuda = FakeCuda(monkeypatch, nvml=False)
    writer = Writer()
    stats = gpustats.EpochStats(torch.device("cuda"), sample_seconds=0.01)
    record = run_epoch(stats, cuda, writer, 1, 300, 512, 0)
    assert record == {"peak_allocated_mib": 300, "peak_reserved_mib": 512, "utilization_percent": None}
    assert [tag for tag, _, _ in writer.scalars] == ["gpu/peak_allocated_mib", "gpu/peak_reserved_mib"]
    summary = stats.summary([{"gpu": record}])
    assert summary["utilization_percent"] is None
    assert "nvidia-ml-py" in summary["note"]


def test_a_cpu_training_says_it_had_no_gpu_in_metrics_and_report(demo_data, tmp_path):
    opts = train.TrainOptions.from_dict(
        {"model": "simplecnn", "epochs": 2, "train_subset": 64, "batch_size": 32, "device": "cpu"}
    )
    metrics = train.train(opts, demo_data, tmp_path, seed=0, threads=1, log=lambda *_: None)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["gpu"] == {"name": None, "note": "no GPU: trained on cpu"} == metrics["gpu"]
    assert [epoch["gpu"] for epoch in saved["history"]] == [None, None]
    table = report.gpu_table([{"name": "tiny", "seed": 0, "metrics": saved}])
    assert "no GPU: trained on cpu" in table and "MiB" not in table


def test_the_report_shows_each_jobs_peak_memory_against_the_gpus_size():
    gpu = {
        "name": "Fake GPU 80GB",
        "total_mib": 81920.0,
        "peak_allocated_mib": 1500.0,
        "peak_reserved_mib": 4096.0,
        "utilization_percent": 70.0,
        "note": "",
    }
    records = [
        {"name": "big", "seed": 0, "metrics": {"gpu": gpu}},
        {"name": "old", "seed": 1, "metrics": {}},  # metrics.json from before GPU stats
    ]
    table = report.gpu_table(records)
    big, old = table.splitlines()[2:]
    assert "Fake GPU 80GB" in big and "1,500" in big and "4,096" in big and "5.0%" in big and "70%" in big
    assert "not recorded" in old


@pytest.mark.parametrize(
    "device, said", [("cpu", "no GPU: trained on cpu"), ("mps", "GPU memory not recorded: trained on mps")]
)
def test_what_was_not_recorded_is_said_once_in_tensorboard(device, said):
    writer = Writer()
    stats = gpustats.EpochStats(torch.device(device))
    for epoch in (3, 4):  # a resumed run starts past epoch 1
        stats.start()
        assert stats.finish(writer, epoch) is None
    assert writer.texts == [("gpu", said, 3)]
    assert stats.summary([]) == {"name": None, "note": said}
