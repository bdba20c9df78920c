"""Small promises of the training library: option types, precision and memory layout, devices.
(Augmentation and training batches: test_augment.py; the schedule: test_train_behaviour.py.)"""

import pytest
import torch
from labbook import train


@pytest.mark.parametrize("key", ["epochs", "batch_size", "lr", "weight_decay"])
def test_a_bool_is_no_number_option(key):
    with pytest.raises(TypeError, match=f"'{key}' must be"):
        train.TrainOptions.from_dict({key: True})
    assert train.TrainOptions.from_dict({"flip": False}).flip is False


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
