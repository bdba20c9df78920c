"""Augmentation on the device (labbook/batches.py): each transform does exactly what the README says,
image by image; and what a training batch and an epoch of batches are (DeviceData)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from labbook import batches, train


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
    out = batches.random_crop(x, padding, torch.Generator().manual_seed(0))
    offsets = [crop_offset(x[i], out[i], padding) for i in range(len(x))]
    assert None not in offsets, "every output is the padded input cropped at one offset"
    # Offsets vary from image to image, rows and columns independently, over the whole range.
    side = 2 * padding + 1
    assert set(offsets) == {(dy, dx) for dy in range(side) for dx in range(side)}
    centred = sum(o == (padding, padding) for o in offsets) / len(offsets)
    assert centred < 0.15, f"an untranslated image is one offset of {side * side}, not the rule"
    assert torch.equal(batches.random_crop(x, 0, torch.Generator()), x), "padding 0 is off"


def test_translate_fills_with_zeros_and_keeps_the_input():
    x = distinct_images(50)
    before = x.clone()
    out = batches.random_crop(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(x, before)
    moved = [i for i in range(len(x)) if crop_offset(x[i], out[i], 3) != (3, 3)]
    assert moved and all((out[i] == 0).any() for i in moved), "pixels shifted in are zero"


def test_translate_draws_from_the_generator():
    x = distinct_images(64)
    a = batches.random_crop(x, 4, torch.Generator().manual_seed(5))
    b = batches.random_crop(x, 4, torch.Generator().manual_seed(5))
    c = batches.random_crop(x, 4, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_is_exactly_a_left_right_mirror_of_about_half_the_images():
    x = distinct_images(1000, 6, 6)
    out = batches.random_flip(x, torch.Generator().manual_seed(2))
    assert torch.equal(out, batches.random_flip(x, torch.Generator().manual_seed(2))), (
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
    out = batches.cutout(x, size, torch.Generator().manual_seed(size))
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
    assert torch.equal(batches.cutout(x, 0, torch.Generator()), x)
    out = batches.cutout(x, 3, torch.Generator().manual_seed(0))
    kept = out != 0
    assert torch.equal(out[kept], x[kept])
    assert ((out == 0).flatten(1).sum(1) <= 27).all()


# ---------------------------------------------------------------- what a training batch is
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def device_data(n=64, size=8, input_size=0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    return batches.DeviceData(images, labels, MEAN, STD, torch.device("cpu"), input_size), images, labels


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


# ---------------------------------------------------------------- random resized crop
def box_can_come_from(boxes: torch.Tensor, side: int, scale, ratio) -> torch.Tensor:
    """Per box: could rounding an area in scale × side² and a ratio in ratio to whole pixels
    have made it? Each side is within half a pixel of its exact value, which bounds both."""
    h, w = boxes[:, 2].double(), boxes[:, 3].double()
    area_low, area_high = (h - 0.5) * (w - 0.5) / side**2, (h + 0.5) * (w + 0.5) / side**2
    ratio_low, ratio_high = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)
    return (
        (area_high >= scale[0]) & (area_low <= scale[1]) & (ratio_high >= ratio[0]) & (ratio_low <= ratio[1])
    )


@pytest.mark.parametrize("side", [32, 224])
@pytest.mark.parametrize("scale, ratio", [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.5, 0.7), (0.5, 2.0))])
def test_resized_crop_boxes_keep_to_scale_and_ratio_inside_the_image(side, scale, ratio):
    boxes = batches.resized_crop_boxes(4000, side, side, scale, ratio, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    assert boxes.dtype == torch.long and boxes.shape == (4000, 4)
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= side).all() and (left + w <= side).all(), "inside the image"
    smaller = (h < side) & (w < side)
    assert ((top == 0) & smaller).any() and ((left == 0) & smaller).any(), "from the first position"
    assert ((top + h == side) & smaller).any() and ((left + w == side) & smaller).any(), "to the last"
    assert box_can_come_from(boxes, side, scale, ratio).all()
    # the ranges are used to their ends, and the positions over the room a box leaves
    area, aspect = (h * w).double() / side**2, w.double() / h
    assert area.min() < scale[0] + 0.05 and area.max() > scale[1] - 0.05
    assert aspect.min() < ratio[0] * 1.1 and aspect.max() > ratio[1] / 1.1
    room = (side - h).clamp(min=1).double()
    assert 0.4 < (top / room)[side - h > 8].mean() < 0.6, "uniform over the positions that fit"


def test_resized_crop_boxes_are_drawn_as_torchvisions_random_resized_crop():
    """The same distribution as torchvision's RandomResizedCrop.get_params (its own draws: the
    mean box area, log aspect ratio and position over 4000 draws agree)."""
    from torchvision.transforms import RandomResizedCrop

    scale, ratio, side = (0.08, 1.0), (3 / 4, 4 / 3), 64
    ours = batches.resized_crop_boxes(
        4000, side, side, scale, ratio, torch.Generator().manual_seed(1)
    ).double()
    torch.manual_seed(1)
    image = torch.zeros(3, side, side)
    theirs = torch.tensor([RandomResizedCrop.get_params(image, scale, ratio) for _ in range(4000)]).double()
    for stat in (
        lambda b: b[:, 2] * b[:, 3] / side**2,  # area fraction: mean 0.54
        lambda b: (b[:, 3] / b[:, 2]).log(),  # log aspect ratio: mean 0
        lambda b: b[:, 0] / side,  # top
        lambda b: b[:, 1] / side,  # left
    ):
        a, b = stat(ours), stat(theirs)
        assert abs(a.mean() - b.mean()) < 4 * (a.var() / 4000 + b.var() / 4000).sqrt() + 1e-3


@pytest.mark.parametrize("ratio", [(3.0, 4.0), (0.2, 0.25), (0.8, 1.25)])
def test_when_no_try_fits_the_box_is_torchvisions_centre_crop_of_the_clamped_ratio(ratio):
    """scale (1, 1) with a ratio away from the square image's never fits: torchvision's fallback,
    deterministic, is the box of every image; with a ratio holding 1 it is the whole image."""
    from torchvision.transforms import RandomResizedCrop

    boxes = batches.resized_crop_boxes(50, 30, 30, (1.0, 1.0), ratio, torch.Generator().manual_seed(0))
    expected = RandomResizedCrop.get_params(torch.zeros(3, 30, 30), [1.0, 1.0], list(ratio))
    assert all(tuple(box) == expected for box in boxes.tolist())


def test_resized_crop_of_the_whole_image_at_its_size_is_the_identity():
    x = torch.rand(16, 3, 20, 20)
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(batches.random_resized_crop(x, 20, (1.0, 1.0), (1.0, 1.0), gen), x)


def test_resized_crop_is_crop_then_bilinear_resize():
    """Each box cropped and resized as torchvision's resized_crop (bilinear, no antialias) does it;
    away from the box's edge, where ours samples the pixels beyond the box and theirs repeats its
    border, the two agree."""
    import torchvision.transforms.functional as TF

    x = torch.rand(3, 3, 40, 40)
    boxes = torch.tensor([[0, 0, 40, 40], [5, 9, 12, 20], [20, 3, 17, 9]])
    out = batches.resized_crop(x, boxes, 24)
    assert out.shape == (3, 3, 24, 24)
    for image, (top, left, h, w), got in zip(x, boxes.tolist(), out, strict=True):
        theirs = TF.resized_crop(image, top, left, h, w, [24, 24], antialias=False)
        edge = math.ceil(24 / min(h, w))
        torch.testing.assert_close(got[:, edge:-edge, edge:-edge], theirs[:, edge:-edge, edge:-edge])
    # at the image's edges too, nothing from outside it comes in: a uniform image's crops are uniform
    ones = batches.random_resized_crop(
        torch.ones(64, 3, 8, 8), 32, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator()
    )
    torch.testing.assert_close(ones, torch.ones_like(ones))


def test_random_resized_crop_draws_from_the_generator_alone():
    x = distinct_images(32, 16, 16)
    crop = lambda seed: batches.random_resized_crop(x, 16, (0.08, 1.0), (3 / 4, 4 / 3),  # noqa: E731
                                                   torch.Generator().manual_seed(seed))  # fmt: skip
    torch.manual_seed(1)
    a = crop(5)
    torch.manual_seed(2)  # the global generator plays no part
    assert torch.equal(a, crop(5)) and not torch.equal(a, crop(6))
    assert not any(torch.equal(a[i], x[i]) for i in range(32)), "a box of at most the whole image, resized"


def test_a_training_batch_with_random_resized_crop_has_the_input_size_from_larger_stored_images():
    data, images, _ = device_data(n=40, size=48, input_size=24)
    opts = options(crop_scale=0.25, flip=True, crop_padding=2, cutout=3)
    x, _ = data.batch(torch.arange(40), opts, torch.Generator().manual_seed(0))
    assert x.shape == (40, 3, 24, 24)
    again, _ = data.batch(torch.arange(40), opts, torch.Generator().manual_seed(0))
    other, _ = data.batch(torch.arange(40), opts, torch.Generator().manual_seed(1))
    assert torch.equal(x, again) and not torch.equal(x, other)
    # crops of a quarter of the area or more of 48×48 images, at 24×24: never the plain resize
    plain = data.batch(torch.arange(40))[0]
    assert sum(torch.allclose(x[i], plain[i], atol=1e-4) for i in range(40)) < 4
    # the whole image (scale 1, ratio 1) is the evaluation batch's resize
    whole, _ = data.batch(torch.arange(40), options(crop_scale=1.0, crop_ratio=1.0), torch.Generator())
    torch.testing.assert_close(whole, plain, atol=1e-5, rtol=1e-5)


def test_the_options_are_the_crops_scale_from_crop_scale_to_1_and_ratio_from_1_over_crop_ratio():
    """A training batch with crop_scale s and crop_ratio r is random_resized_crop's boxes of scale
    (s, 1) and ratio (1/r, r), drawn first from the batch's generator, then normalized."""
    data, images, _ = device_data(n=30, size=16, input_size=12)
    x, _ = data.batch(
        torch.arange(30), options(crop_scale=0.3, crop_ratio=1.5), torch.Generator().manual_seed(4)
    )
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    crops = batches.random_resized_crop(
        floats, 12, (0.3, 1.0), (1 / 1.5, 1.5), torch.Generator().manual_seed(4)
    )
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (crops - mean) / std)


def test_random_resized_crop_is_off_by_default_and_its_options_are_checked():
    defaults = train.TrainOptions()
    assert (defaults.crop_scale, defaults.crop_ratio) == (0.0, 4 / 3), "off; torchvision's ratio (3/4, 4/3)"
    opts = train.TrainOptions.from_dict({"crop_scale": 1, "crop_ratio": 2})
    assert (opts.crop_scale, opts.crop_ratio) == (1.0, 2.0) and isinstance(opts.crop_scale, float)
    with pytest.raises(ValueError, match="runs.a.crop_scale=1.5: must be ≤ 1"):
        train.TrainOptions.from_dict({"crop_scale": 1.5}, where="runs.a.")
    with pytest.raises(ValueError, match="crop_scale=-0.1: must be ≥ 0"):
        train.TrainOptions.from_dict({"crop_scale": -0.1})
    with pytest.raises(ValueError, match="crop_ratio=0.75: must be ≥ 1"):
        train.TrainOptions.from_dict({"crop_ratio": 0.75})
    with pytest.raises(TypeError, match="'crop_scale' must be float"):
        train.TrainOptions.from_dict({"crop_scale": True})


# ---------------------------------------------------------------- a resumed run
def test_a_run_with_random_resized_crop_killed_after_an_epoch_resumes_to_the_uninterrupted_run(
    tmp_path, monkeypatch
):
    """The crop's draws come from the run's generator, which the checkpoint keeps: killed after
    epoch 1 and resumed, a run ends with the uninterrupted one's metrics and weights."""
    from builders import train_killed_after, weights_hash, without_timings
    from labbook import prepare

    data = tmp_path / "data"  # stored at 40 px, trained at 32
    prepare.prepare({"name": "shapes", "kind": "demo", "train_size": 160, "val_size": 32, "test_size": 32,
                     "image_size": 40}, data)  # fmt: skip
    values = {"model": "simplecnn", "epochs": 2, "batch_size": 32, "input_size": 32, "device": "cpu",
              "deterministic": True, "crop_scale": 0.3, "log_every": 1}  # fmt: skip
    opts = train.TrainOptions.from_dict(values)
    quiet = lambda *_: None  # noqa: E731
    whole = train.train(opts, data, tmp_path / "whole", seed=0, threads=1, log=quiet)
    train_killed_after(
        monkeypatch, 1, lambda: train.train(opts, data, tmp_path / "killed", seed=0, threads=1, log=quiet)
    )
    resumed = train.train(opts, data, tmp_path / "killed", seed=0, threads=1, log=quiet)
    assert resumed["resumed_after_epoch"] == 1
    assert without_timings(resumed) == without_timings(whole)
    assert weights_hash(tmp_path / "killed" / "model.pt") == weights_hash(tmp_path / "whole" / "model.pt")
    plain = train.train(dataclasses.replace(opts, crop_scale=0.0), data, tmp_path / "plain",
                        seed=0, threads=1, log=quiet)  # fmt: skip
    assert plain["history"][0]["train_loss"] != whole["history"][0]["train_loss"], "the crop took part"
