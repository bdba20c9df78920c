"""Several processes for one run (labbook/distributed.py): `gpus: 2` on this CPU machine runs two
gloo workers under torchrun, and their run is the one-process run: the same batches, the same
numbers to float tolerance, one set of outputs; a killed two-process run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from builders import REPO
from labbook import batches, distributed, prepare, train

SPLITS = {"name": "shapes", "kind": "demo", "train_size": 300, "val_size": 60, "test_size": 60}
# batches of 45 (the last of 15) split 22/23 and 7/8: uneven shards, whose losses must be weighted
QUICK = {"model": "cifarnet", "device": "cpu", "epochs": 2, "batch_size": 45, "log_every": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed-data")
    prepare.prepare(SPLITS, out)
    return out


def test_shards_of_a_batch_are_contiguous_near_equal_and_cover_it():
    for n in (1, 7, 50, 64):
        for world in (1, 2, 3):
            parts = [batches.shard(n, rank, world) for rank in range(world)]
            assert [i for part in parts for i in range(n)[part]] == list(range(n))
            assert max(len(range(n)[p]) for p in parts) - min(len(range(n)[p]) for p in parts) <= 1


def test_a_step_with_fewer_images_than_processes_is_an_error_naming_the_numbers():
    train.check_shards(301, 50, 1)  # one process: any batch
    train.check_shards(302, 50, 2)
    with pytest.raises(
        ValueError, match=r"gpus: 2 .* a step has 1 images \(301 training images in batches of 50\)"
    ):
        train.check_shards(301, 50, 2)
    with pytest.raises(ValueError, match="a step has 1 images"):
        train.check_shards(10, 1, 2)


def test_sync_batch_norm_goes_back_to_the_batch_norm_it_came_from_with_its_state():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.LazyLinear(2), torch.nn.BatchNorm1d(2))  # fmt: skip
    net(torch.randn(8, 3, 6, 6))
    expected = net.eval()(torch.randn(2, 3, 6, 6)), net.state_dict()
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    synced[1].plain_kind, synced[4].plain_kind = torch.nn.BatchNorm2d, torch.nn.BatchNorm1d
    plain = distributed.plain_batch_norm(synced)
    assert [type(m) for m in plain][1::3] == [torch.nn.BatchNorm2d, torch.nn.BatchNorm1d]
    assert plain.state_dict().keys() == expected[1].keys()
    assert all(torch.equal(v, expected[1][k]) for k, v in plain.state_dict().items())


# A sitecustomize for torchrun's workers (they alone have RANK set): every file a worker opens
# for writing under WRITES_UNDER, a line "<rank> <path>" in WRITES_LOG. Python's audit hook sees
# each open() and os.open(): torch.save's, TensorBoard's and the JSON files', not the C++ writer
# of torch.export.save (model.pt2).
WRITES_AUDIT = """
import os, sys
if "RANK" in os.environ:
    _log = os.open(os.environ["WRITES_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    _under = os.environ["WRITES_UNDER"]
    _writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def _audit(event, args):
        if event == "open" and not isinstance(args[0], int) and args[2] & _writing:
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(_under):
                os.write(_log, f"{os.environ['RANK']} {os.path.relpath(path, _under)}\\n".encode())

    sys.addaudithook(_audit)
"""


@pytest.mark.slow  # two runs, one of them two torchrun workers: about 25 s on two cores
def test_two_processes_train_the_run_one_process_trains(data, tmp_path, monkeypatch):
    lines = []
    one = train.train(train.TrainOptions.from_dict(QUICK), data, tmp_path / "one", seed=2, threads=2,
                      log=lambda *_: None)  # fmt: skip
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(WRITES_AUDIT)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, (str(audit), os.environ.get("PYTHONPATH"))))
    )
    monkeypatch.setenv("WRITES_LOG", str(audit / "writes.txt"))
    monkeypatch.setenv("WRITES_UNDER", str(tmp_path / "two"))
    opts = train.TrainOptions.from_dict({**QUICK, "gpus": 2})
    two = train.train(opts, data, tmp_path / "two", seed=2, threads=2, log=lines.append)
    writes = [line.split(" ", 1) for line in (audit / "writes.txt").read_text().splitlines()]
    written_by = {rank: " ".join(sorted({path for r, path in writes if r == rank})) for rank in "01"}
    assert written_by["1"] == "", f"only rank 0 writes into the run's folder: {written_by}"
    assert all(name in written_by["0"] for name in ("checkpoint.pt", "metrics.json", "tfevents")), written_by
    assert (one["processes"], two["processes"]) == (1, 2)
    assert {"worker 0/2 on cpu", "worker 1/2 on cpu"} <= set(lines), lines
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        np.testing.assert_allclose([r[key] for r in two["history"]], [r[key] for r in one["history"]],
                                   rtol=1e-5, err_msg=key)  # fmt: skip
    np.testing.assert_allclose(np.array(two["step_losses"]), np.array(one["step_losses"]), rtol=1e-5)
    # float tolerance: logits a hair apart may flip an image whose two best classes nearly tie
    assert abs(two["test_acc"] - one["test_acc"]) <= 1 / 60
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-5)
    assert two["train_images"] == one["train_images"] == 240
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "one").iterdir()), "rank 0's outputs, no job file"
    assert len(list((tmp_path / "two" / "tensorboard").iterdir())) == 1, "one event file: rank 0's"
    saved = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert saved["processes"] == 2 and saved["options"]["gpus"] == 2


@pytest.mark.slow  # three two-process runs: about 40 s on two cores
def test_a_two_process_run_killed_after_an_epoch_resumes_to_the_uninterrupted_run(data, tmp_path):
    opts = json.dumps({**QUICK, "gpus": 2, "epochs": 3})
    script = (
        "import json, sys; from labbook import train\n"
        "opts = train.TrainOptions.from_dict(json.loads(sys.argv[3]))\n"
        "train.train(opts, sys.argv[1], sys.argv[2], seed=0, threads=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    whole = tmp_path / "whole"
    subprocess.run(
        [sys.executable, "-c", script, data, whole, opts], env=env, check=True, capture_output=True
    )
    killed = tmp_path / "killed"
    run = subprocess.Popen([sys.executable, "-c", script, data, killed, opts], env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the launcher, torchrun and both workers
    run.wait()
    assert (killed / "checkpoint.pt").exists() and not (killed / "metrics.json").exists()
    subprocess.run(
        [sys.executable, "-c", script, data, killed, opts], env=env, check=True, capture_output=True
    )
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (whole, killed))
    assert b["resumed_after_epoch"] >= 1
    np.testing.assert_allclose([r["val_loss"] for r in b["history"]], [r["val_loss"] for r in a["history"]],
                               rtol=1e-6)  # fmt: skip
    assert abs(b["test_acc"] - a["test_acc"]) <= 1 / 60
