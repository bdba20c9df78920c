"""`compile: true` (labbook/train.py): training steps run through torch.compile, while what is
saved, evaluated and exported stays the plain module, with its own state_dict keys; metrics.json
and the report say so, and a compiled run resumes like any other.

The fast tests use torch.compile itself (TorchDynamo captures the graphs, guards, recompiles) with
a backend that runs each captured graph eagerly instead of Inductor's generated C++: seconds, not
minutes. One slow test compiles for real."""

import numpy as np
import pytest
import torch
from builders import train_killed_after, weights_hash, without_timings
from labbook import arrays, export, report, train

QUICK = {"model": "cifarnet", "epochs": 2, "batch_size": 40, "train_subset": 96, "optimizer": "adam",
         "lr": 0.003, "device": "cpu", "deterministic": True, "log_every": 1}  # fmt: skip
# what differs between a compiled and a plain run's metrics.json besides the numbers
COMPILE_KEYS = ("options", "compiled", "compile_seconds")


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from labbook import prepare

    out = tmp_path_factory.mktemp("demo-data")
    prepare.prepare(
        {"name": "shapes", "kind": "demo", "train_size": 200, "val_size": 40, "test_size": 40}, out
    )
    return out


def run(data_dir, out_dir, **changes):
    opts = train.TrainOptions.from_dict({**QUICK, **changes})
    logs = []
    return train.train(opts, data_dir, out_dir, seed=0, threads=1, log=logs.append), logs


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with a backend that records the batch size of each graph TorchDynamo
    captures and runs the graph as captured. Dynamo's caches are cleared around the test, so that
    graphs of another test's backend are not reused."""
    graphs, real_compile = [], torch.compile

    def recording_backend(graph, example_inputs):
        images = [
            x for x in example_inputs if isinstance(x, torch.Tensor) and tuple(x.shape[1:]) == (3, 32, 32)
        ]
        graphs.extend(len(x) for x in images)
        return graph.forward

    monkeypatch.setattr(
        torch, "compile", lambda model, **kw: real_compile(model, backend=recording_backend, **kw)
    )
    torch._dynamo.reset()
    yield graphs
    torch._dynamo.reset()


def without_compile(metrics: dict) -> dict:
    return {k: v for k, v in without_timings(metrics).items() if k not in COMPILE_KEYS}


def test_compile_is_an_option_off_by_default_and_part_of_the_fingerprint():
    assert train.TrainOptions().compile is False
    assert train.TrainOptions.from_dict({"compile": True}).compile is True
    with pytest.raises(TypeError, match="'compile' must be bool"):
        train.TrainOptions.from_dict({"compile": "yes"})
    plain = train.TrainOptions().fingerprint(0, "data")
    assert train.TrainOptions(compile=True).fingerprint(0, "data") != plain, (
        "compiled kernels round differently"
    )


def test_training_steps_call_torch_compiles_wrapper_and_the_state_keeps_the_plain_module():
    """The real torch.compile (lazy: nothing compiles before the first call): its wrapper's keys
    carry the `_orig_mod.` prefix, which is why the run saves and loads the module it wraps."""
    model = train.models.build("cifarnet", 10, "none", "all", {})
    opts = train.TrainOptions(compile=True)
    state = train.TrainState.start(model, opts, 3, torch.Generator(), torch.device("cpu"))
    assert state.model is model and isinstance(state.net, torch._dynamo.eval_frame.OptimizedModule)
    assert state.net._orig_mod is model
    assert list(state.net.state_dict()) == [f"_orig_mod.{k}" for k in model.state_dict()]
    assert [id(p) for p in state.net.parameters()] == [id(p) for p in model.parameters()], "the same weights"
    assert (
        train.TrainState.start(model, train.TrainOptions(), 3, torch.Generator(), torch.device("cpu")).net
        is model
    )
    assert train.compiled(model, train.TrainOptions()) is model


def test_a_compiled_run_trains_through_it_and_saves_exports_and_reports_the_plain_module(
    demo_data, tmp_path, eager_compile, monkeypatch
):
    compiled, logs = run(demo_data, tmp_path / "compiled", compile=True, keep_checkpoint=True)
    # 96 images in batches of 40: 40, 40, 16; static shapes: one graph per batch size
    assert sorted(eager_compile) == [16, 40], "training ran through torch.compile"
    assert compiled["compiled"] is True and compiled["compile_seconds"] > 0
    assert any(line.startswith("compiled the network: the first step took") for line in logs)
    monkeypatch.setattr(torch, "compile", lambda *a, **kw: pytest.fail("compile: false compiled"))
    plain, _ = run(demo_data, tmp_path / "plain", keep_checkpoint=True)
    assert (plain["compiled"], plain["compile_seconds"]) == (False, None)
    # Run eagerly, the captured graphs compute what the module does: the same training, to the bit.
    assert without_compile(compiled) == without_compile(plain)
    assert weights_hash(tmp_path / "compiled" / "model.pt") == weights_hash(tmp_path / "plain" / "model.pt")
    # model.pt and the checkpoint hold the module's own keys, no `_orig_mod.` prefix
    keys = list(torch.load(tmp_path / "plain" / "model.pt", weights_only=True))
    assert list(torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)) == keys
    checkpoint = torch.load(tmp_path / "compiled" / "checkpoint.pt", weights_only=True)
    assert list(checkpoint["model"]) == keys
    # the portable model (what predict loads) gives the run's test logits
    program, info = export.load_portable(tmp_path / "compiled")
    images, _ = arrays.load_split(demo_data, "test")
    with torch.no_grad():
        logits = program(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    saved = np.load(tmp_path / "compiled" / "predictions.npz")["logits"]
    assert np.allclose(logits.numpy(), saved, atol=1e-4) and info["model"] == "cifarnet"
    # the report's model table says so, in the precision cell
    rows = report.model_table(
        [{"name": "c", "seed": 0, "metrics": compiled}, {"name": "p", "seed": 0, "metrics": plain}]
    )
    compiled_row, plain_row = rows.splitlines()[-2:]
    assert "| fp32, compiled | 1 process, resident |" in compiled_row and "| fp32 | 1 process, " in plain_row


def test_a_compiled_run_killed_after_an_epoch_resumes_to_the_uninterrupted_run(
    demo_data, tmp_path, eager_compile, monkeypatch
):
    whole, _ = run(demo_data, tmp_path / "whole", compile=True)
    train_killed_after(monkeypatch, 1, lambda: run(demo_data, tmp_path / "killed", compile=True))
    resumed, logs = run(demo_data, tmp_path / "killed", compile=True)
    assert resumed["resumed_after_epoch"] == 1 and any("resuming" in line for line in logs)
    assert resumed["compiled"] and resumed["compile_seconds"] > 0, "the resumed process compiles anew"
    assert without_timings({**resumed, "compile_seconds": 0}) == without_timings(
        {**whole, "compile_seconds": 0}
    )
    assert weights_hash(tmp_path / "killed" / "model.pt") == weights_hash(tmp_path / "whole" / "model.pt")


@pytest.mark.slow
def test_a_run_compiled_by_inductor_learns_as_the_plain_one_and_exports(demo_data, tmp_path):
    """Inductor for real (C++ on the CPU; ~20-60 s): fused kernels round differently, so the
    numbers agree closely, not to the bit; the outputs are the plain module's."""
    torch._dynamo.reset()
    changes = {"model": "simplecnn", "epochs": 1, "train_subset": 64, "batch_size": 32}
    compiled, _ = run(demo_data, tmp_path / "compiled", compile=True, **changes)
    plain, _ = run(demo_data, tmp_path / "plain", **changes)
    assert compiled["compiled"] and compiled["compile_seconds"] > 0
    assert compiled["history"][0]["train_loss"] == pytest.approx(plain["history"][0]["train_loss"], rel=1e-3)
    assert compiled["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-3)
    keys = list(torch.load(tmp_path / "plain" / "model.pt", weights_only=True))
    assert list(torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)) == keys
    program, _ = export.load_portable(tmp_path / "compiled")
    images, _ = arrays.load_split(demo_data, "test")
    with torch.no_grad():
        logits = program(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    saved = np.load(tmp_path / "compiled" / "predictions.npz")["logits"]
    assert np.allclose(logits.numpy(), saved, atol=1e-4)
