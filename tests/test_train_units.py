"""Small promises of the training library: option types, reproducible augmentation, defaults,
precision and memory layout, schedule edge cases, devices."""

import numpy as np
import pytest
import torch
from labbook import train


@pytest.mark.parametrize("key", ["epochs", "batch_size", "lr", "weight_decay"])
def test_a_bool_is_no_number_option(key):
    with pytest.raises(TypeError, match=f"'{key}' must be"):
        train.TrainOptions.from_dict({key: True})
    assert train.TrainOptions.from_dict({"flip": False}).flip is False


def test_translate_by_one_pixel_moves_images():
    x = torch.arange(200 * 3 * 4 * 4, dtype=torch.float32).view(200, 3, 4, 4) + 1
    out = train.random_crop(x, 1, torch.Generator().manual_seed(0))
    assert (out != x).flatten(1).any(1).float().mean() > 0.8, "8 of 9 offsets move the image"


def test_cutout_is_reproducible_from_its_generator_alone():
    x = torch.ones(50, 3, 9, 9)
    first = train.cutout(x, 3, torch.Generator().manual_seed(4))
    torch.manual_seed(123)  # the global generator must play no part
    second = train.cutout(x, 3, torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    corners = train.cutout(torch.ones(2000, 1, 6, 6), 1, torch.Generator().manual_seed(0))
    assert (corners[:, 0, 0, :] == 0).any() and (corners[:, 0, :, 0] == 0).any(), (
        "centres reach row and column 0"
    )


def test_a_training_batch_is_reproducible_from_the_generator_alone():
    images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    data = train.DeviceData(images, np.zeros(32, np.int64), (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    opts = train.TrainOptions(crop_padding=2, flip=True, cutout=3)
    batches = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        batches.append(data.batch(torch.arange(32), opts, torch.Generator().manual_seed(7))[0])
    assert torch.equal(*batches)


def test_device_data_keeps_the_stored_size_by_default():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    data = train.DeviceData(images, np.zeros(2, np.int64), (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    assert data.batch(torch.arange(2))[0].shape == (2, 3, 8, 8) and len(data) == 2


def test_lr_factor_when_one_step_follows_the_warmup():
    opts = train.TrainOptions(schedule="cosine", warmup_epochs=1)  # 3 warm-up steps of 4
    assert [train.lr_factor(opts, s, 4, 3) for s in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 0])


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


def test_choose_device_cpu_and_auto_here():
    assert train.choose_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert train.choose_device() == torch.device("cpu")
