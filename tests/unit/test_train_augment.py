"""Augmentation on the device (labbook/train.py): each transform does exactly what the README says,
image by image; and what a training batch and an epoch of batches are (DeviceData)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from labbook import train


def distinct_images(n: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """n×3×h×w of positive values, all different: a crop offset or a flip is readable off them."""
    return torch.arange(n * 3 * h * w, dtype=torch.float32).view(n, 3, h, w) + 1


def crop_offset(image: torch.Tensor, out: torch.Tensor, padding: int):
    """The (dy, dx) at which `out` is a window of the zero-padded image, or None."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (padding,) * 4)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            if torch.equal(out, padded[:, dy : dy + h, dx : dx + w]):
                return dy, dx
    return None


@pytest.mark.parametrize("padding", [1, 2])
def test_translate_is_a_window_of_the_zero_padded_image_at_every_offset(padding):
    x = distinct_images(400)
    out = train.random_crop(x, padding, torch.Generator().manual_seed(0))
    offsets = [crop_offset(x[i], out[i], padding) for i in range(len(x))]
    assert None not in offsets, "every output is the padded input cropped at one offset"
    # Offsets vary from image to image, rows and columns independently, over the whole range.
    side = 2 * padding + 1
    assert set(offsets) == {(dy, dx) for dy in range(side) for dx in range(side)}
    centred = sum(o == (padding, padding) for o in offsets) / len(offsets)
    assert centred < 0.15, f"an untranslated image is one offset of {side * side}, not the rule"
    assert torch.equal(train.random_crop(x, 0, torch.Generator()), x), "padding 0 is off"


def test_translate_fills_with_zeros_and_keeps_the_input():
    x = distinct_images(50)
    before = x.clone()
    out = train.random_crop(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(x, before)
    moved = [i for i in range(len(x)) if crop_offset(x[i], out[i], 3) != (3, 3)]
    assert moved and all((out[i] == 0).any() for i in moved), "pixels shifted in are zero"


def test_translate_draws_from_the_generator():
    x = distinct_images(64)
    a = train.random_crop(x, 4, torch.Generator().manual_seed(5))
    b = train.random_crop(x, 4, torch.Generator().manual_seed(5))
    c = train.random_crop(x, 4, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_is_exactly_a_left_right_mirror_of_about_half_the_images():
    x = distinct_images(1000, 6, 6)
    out = train.random_flip(x, torch.Generator().manual_seed(2))
    assert torch.equal(out, train.random_flip(x, torch.Generator().manual_seed(2))), (
        "drawn from the generator"
    )
    mirrored = torch.tensor([torch.equal(out[i], x[i].flip(2)) for i in range(len(x))])
    unchanged = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    assert (mirrored | unchanged).all(), "each image is either left as is or mirrored left-right"
    assert not (mirrored & unchanged).any()
    assert 0.45 < mirrored.float().mean().item() < 0.55
    # a left-right mirror moves columns, never rows
    flipped = out[mirrored]
    assert torch.equal(flipped[..., 0], x[mirrored][..., -1])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_cutout_zeroes_one_square_of_the_configured_side(size):
    n, side = 500, 16
    x = torch.ones(n, 3, side, side)
    out = train.cutout(x, size, torch.Generator().manual_seed(size))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2]), "all channels"
    inside = 0
    for image in out[:, 0]:
        zeros = (image == 0).nonzero()
        assert len(zeros), "every image gets a square"
        rows, cols = zeros[:, 0], zeros[:, 1]
        height = rows.max().item() - rows.min().item() + 1
        width = cols.max().item() - cols.min().item() + 1
        assert height <= size and width <= size
        assert len(zeros) == height * width, "the zeros form a filled rectangle"
        if 0 < rows.min() and rows.max() < side - 1 and 0 < cols.min() and cols.max() < side - 1:
            inside += 1  # away from the border nothing is clipped: the full square
            assert height == width == size
    assert inside > n / 5
    assert (out[:, 0, 0, :] == 0).any() and (out[:, 0, :, 0] == 0).any(), "centres reach row and column 0"
    # squares sit at many places
    first_zero = [(image == 0).nonzero()[0].tolist() for image in out[:, 0]]
    assert len({tuple(p) for p in first_zero}) > side * side / 2


def test_cutout_zero_is_off_and_keeps_the_values_outside_the_square():
    x = torch.rand(20, 3, 10, 10) + 0.5
    assert torch.equal(train.cutout(x, 0, torch.Generator()), x)
    out = train.cutout(x, 3, torch.Generator().manual_seed(0))
    kept = out != 0
    assert torch.equal(out[kept], x[kept])
    assert ((out == 0).flatten(1).sum(1) <= 27).all()


# ---------------------------------------------------------------- what a training batch is
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def device_data(n=64, size=8, input_size=0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    return train.DeviceData(images, labels, MEAN, STD, torch.device("cpu"), input_size), images, labels


def normalized(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def options(**changes):
    return train.TrainOptions(**{"crop_padding": 0, "flip": False, "cutout": 0, **changes})


def test_an_evaluation_batch_is_the_normalized_images_unaugmented():
    data, images, labels = device_data()
    index = torch.tensor([3, 0, 7])
    x, y = data.batch(index)
    torch.testing.assert_close(x, normalized(images[[3, 0, 7]]))
    assert y.tolist() == labels[[3, 0, 7]].tolist() and len(data) == 64
    plain, _ = data.batch(index, options(), torch.Generator())
    torch.testing.assert_close(plain, x)


def test_a_training_batch_is_reproducible_from_the_generator_alone():
    data, _, _ = device_data(32)
    opts = train.TrainOptions(crop_padding=2, flip=True, cutout=3)
    batches = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # the global generator must play no part
        batches.append(data.batch(torch.arange(32), opts, torch.Generator().manual_seed(7))[0])
    assert torch.equal(*batches)


def test_an_epoch_is_the_generators_permutation_in_batches_augmented_from_the_same_generator():
    data, _, labels = device_data(70)
    opts = options(crop_padding=2, flip=True, cutout=3)
    batches = list(data.epoch(32, opts, torch.Generator().manual_seed(5)))
    assert [len(y) for _, y in batches] == [32, 32, 6]
    # the stream a training run draws: the order first, then each batch's augmentation in turn
    gen = torch.Generator().manual_seed(5)
    order = torch.randperm(70, generator=gen)
    for (x, y), start in zip(batches, (0, 32, 64), strict=True):
        index = order[start : start + 32]
        expected, _ = data.batch(index, opts, gen)
        assert torch.equal(x, expected) and y.tolist() == labels[index.numpy()].tolist()


def test_a_training_batch_applies_the_configured_flip():
    data, images, _ = device_data()
    index = torch.arange(64)
    expected = normalized(images)
    x, _ = data.batch(index, options(flip=True), torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(x[i], expected[i].flip(2)) for i in range(64)]
    same = [torch.allclose(x[i], expected[i]) for i in range(64)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 10 < sum(mirrored) < 54


def test_a_training_batch_applies_the_configured_translate_before_normalizing():
    data, images, _ = device_data()
    expected = normalized(images)
    background = normalized(np.zeros((1, 1, 1, 3), np.uint8))[0]  # a zero pixel, normalized
    x, _ = data.batch(torch.arange(64), options(crop_padding=2), torch.Generator().manual_seed(0))
    shifted = 0
    for i in range(64):
        padded = background.expand(3, 12, 12).clone()
        padded[:, 2:10, 2:10] = expected[i]
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.allclose(x[i], padded[:, dy : dy + 8, dx : dx + 8])]  # fmt: skip
        assert windows, f"image {i} is a window of its padded self"
        shifted += windows != [(2, 2)]
    assert shifted > 48


def test_a_training_batch_applies_the_configured_cutout_size():
    data, images, _ = device_data()
    expected = normalized(images)
    background = normalized(np.zeros((1, 1, 1, 3), np.uint8))[0, :, 0, 0]
    x, _ = data.batch(torch.arange(64), options(cutout=4), torch.Generator().manual_seed(0))
    cut = (x == background.view(3, 1, 1)).all(1) & ~(expected == background.view(3, 1, 1)).all(1)
    assert cut.flatten(1).sum(1).max().item() == 16, "a 4×4 square where it fits"
    assert torch.allclose(x[~cut[:, None].expand_as(x)], expected[~cut[:, None].expand_as(x)])


def test_input_size_resizes_every_batch_bilinearly():
    data, images, _ = device_data(input_size=20)
    x, _ = data.batch(torch.arange(5))
    assert x.shape == (5, 3, 20, 20)
    torch.testing.assert_close(
        x, F.interpolate(normalized(images[:5]), size=20, mode="bilinear", align_corners=False)
    )
    same, _ = device_data(input_size=8)[0].batch(torch.arange(5))
    torch.testing.assert_close(same, normalized(images[:5]))
