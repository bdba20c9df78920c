"""Training data on the device: where a split lives, and what a batch and an epoch of batches are.

A split is either **resident** (DeviceData: all of it uint8 on the device, read once) or
**streamed** (StreamedData: each batch's rows read from the data step's `.npy` file in a background
thread into pinned host memory and copied to the device asynchronously). Either way a batch becomes
floats, is augmented and normalized on the device, and for the same generator both give the same
batches bit for bit: they share every step after the rows arrive. `placements` chooses per split
(`data_placement: auto`: resident while the splits fit RESIDENT_SHARE of the device's free memory).

Augmentation draws everything random for a whole batch first (`draw_augmentation`, from the run's
generator) and applies it after (`augment`): the processes of a run with several GPUs each draw the
whole batch's values and apply their shard's, so together they train on exactly the batches one
process would.
"""

import math
import os
import queue
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .plan.options import TrainOptions

RESIDENT_SHARE = 0.25  # of the device's free memory the resident splits may take (auto)
PREFETCH = 2  # batches a streamed split reads ahead of the one training


# ---------------------------------------------------------------- augmentation on the device
def translate(x: torch.Tensor, padding: int, shifts: torch.Tensor) -> torch.Tensor:
    """Each image moved by its (row, column) shift of 0..2·padding in the zero-padded image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    shifts = shifts.to(x.device)
    rows = shifts[0][:, None] + torch.arange(h, device=x.device)  # n×h
    cols = shifts[1][:, None] + torch.arange(w, device=x.device)  # n×w
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # n×h×w×c
    return out.permute(0, 3, 1, 2)


def translate_shifts(n: int, padding: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2 * padding + 1, (2, n), generator=gen)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample translate by up to `padding` pixels with zero fill (RandomCrop(padding=p))."""
    if padding <= 0:
        return x
    return translate(x, padding, translate_shifts(x.shape[0], padding, gen))


def flip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    return torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)


def flip_choices(n: int, gen: torch.Generator) -> torch.Tensor:
    """Which of n images to mirror: each with probability ½."""
    return torch.rand(n, generator=gen) < 0.5


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return flip(x, flip_choices(x.shape[0], gen))


def cut(x: torch.Tensor, size: int, centres: torch.Tensor) -> torch.Tensor:
    """Each image with a size×size square around its (row, column) centre set to zero."""
    _, _, h, w = x.shape
    cy, cx = centres.to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    # offsets -half .. size-half-1 from the centre: exactly `size` pixels, odd or even
    half = size // 2
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    inside = (dy >= -half) & (dy < size - half) & (dx >= -half) & (dx < size - half)
    return x * (~inside)[:, None].to(x.dtype)


def cutout_centres(n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    return torch.stack([torch.randint(0, h, (n,), generator=gen), torch.randint(0, w, (n,), generator=gen)])


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    if size <= 0:
        return x
    return cut(x, size, cutout_centres(x.shape[0], x.shape[2], x.shape[3], gen))


def resized_crop_boxes(n: int, height: int, width: int, scale, ratio, gen: torch.Generator) -> torch.Tensor:
    """n boxes (top, left, height, width) in whole pixels, each drawn as torchvision's
    RandomResizedCrop draws one: up to 10 tries of an area in scale × the image's and an aspect
    ratio (width/height) log-uniform in ratio, the first that fits inside the image, at a uniform
    position; when none fits, a centre crop of the image's own aspect ratio clamped to ratio. All
    tries of all images are drawn at once: a batch takes the same number of draws whatever fits."""
    tries = 10
    area = torch.empty(n, tries, dtype=torch.float64).uniform_(scale[0], scale[1], generator=gen)
    area *= height * width
    log_ratio = torch.empty(n, tries, dtype=torch.float64)
    aspect = log_ratio.uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen).exp()
    w, h = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (0 < w) & (w <= width) & (0 < h) & (h <= height)
    first = fits.int().argmax(1)  # the first try that fits (argmax: the first of equal maxima)
    found, rows = fits.any(1), torch.arange(n)
    # The fallback: the whole image where its aspect ratio is within ratio, else the widest or
    # tallest box of the nearer bound.
    fallback_w, fallback_h = width, height
    if width / height < ratio[0]:
        fallback_h = round(width / ratio[0])
    elif width / height > ratio[1]:
        fallback_w = round(height * ratio[1])
    w = torch.where(found, w[rows, first], float(fallback_w))
    h = torch.where(found, h[rows, first], float(fallback_h))
    at = torch.rand(2, n, dtype=torch.float64, generator=gen)  # uniform over the positions that fit
    top = torch.where(found, (at[0] * (height - h + 1)).floor().clamp(max=height - h), (height - h) // 2)
    left = torch.where(found, (at[1] * (width - w + 1)).floor().clamp(max=width - w), (width - w) // 2)
    return torch.stack([top, left, h, w], 1).long()


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (top, left, height, width in pixels) resized bilinearly to size×size, the
    whole batch in one sampling pass: an affine grid per image maps the output's pixel centres onto
    its box (align_corners=False, as F.interpolate; no antialiasing, as the input_size resize)."""
    n, c, height, width = x.shape
    top, left, h, w = boxes.cpu().double().unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)  # output [-1, 1]² → input [-1, 1]²
    theta[:, 0, 0], theta[:, 0, 2] = w / width, (2 * left + w) / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = h / height, (2 * top + h) / height - 1
    theta = theta.to(x.device, x.dtype)  # computed in float64 on the CPU (MPS has no float64)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(x: torch.Tensor, size: int, scale, ratio, gen: torch.Generator) -> torch.Tensor:
    """Per image, a random box (resized_crop_boxes) resized to size×size (RandomResizedCrop)."""
    boxes = resized_crop_boxes(x.shape[0], x.shape[-2], x.shape[-1], scale, ratio, gen)
    return resized_crop(x, boxes, size)


def draw_augmentation(n: int, height: int, width: int, size: int, opts: TrainOptions, gen) -> dict:
    """Everything random about n images' augmentation, drawn from gen in the order it is applied:
    the resized crop's boxes (to size×size), translate's shifts, the flips, cutout's centres.
    Each value has the images along its last dimension but boxes (first): shard_of slices them."""
    draws = {}
    if opts.crop_scale:
        ratio = (1 / opts.crop_ratio, opts.crop_ratio)
        draws["boxes"] = resized_crop_boxes(n, height, width, (opts.crop_scale, 1.0), ratio, gen)
        height = width = size
    if opts.crop_padding > 0:
        draws["shifts"] = translate_shifts(n, opts.crop_padding, gen)
    if opts.flip:
        draws["flips"] = flip_choices(n, gen)
    if opts.cutout > 0:
        draws["centres"] = cutout_centres(n, height, width, gen)
    return draws


def shard_of(draws: dict, part: slice) -> dict:
    return {name: value[part] if name == "boxes" else value[..., part] for name, value in draws.items()}


def augment(x: torch.Tensor, draws: dict, size: int, opts: TrainOptions) -> torch.Tensor:
    """x (floats 0–1) with the drawn resized crop, translate, flip and cutout, in that order."""
    if "boxes" in draws:  # at the input size from here on: the resize after has nothing to do
        x = resized_crop(x, draws["boxes"], size)
    if "shifts" in draws:
        x = translate(x, opts.crop_padding, draws["shifts"])
    if "flips" in draws:
        x = flip(x, draws["flips"])
    if "centres" in draws:
        x = cut(x, opts.cutout, draws["centres"])
    return x


def shard(n: int, rank: int, world: int) -> slice:
    """The rank's contiguous part of n images: as equal as can be, together all of them."""
    return slice(n * rank // world, n * (rank + 1) // world)


# ---------------------------------------------------------------- reading rows of a split file
class Rows:
    """The images of one split file (the data step's uint8 N×H×W×3 `.npy`), read by row with
    plain reads: no memory map, whose touched pages would count in the process's memory. (Of an
    array in memory, rows are copied from it.)"""

    def __init__(self, images: np.ndarray, rows: np.ndarray | None = None):
        """images: the split's memory map (arrays.load_split; only its file, offset and shape are
        used) or an array; rows: the rows the split's images are (a train subset), default all."""
        self.array = None if isinstance(images, np.memmap) else images
        self.path, self.offset = getattr(images, "filename", None), getattr(images, "offset", 0)
        self.row_shape = images.shape[1:]
        self.row_bytes = math.prod(self.row_shape)
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def read(self, index: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Images index (of this split) into out[:len(index)], one read per run of consecutive rows."""
        rows = self.rows[index]
        if self.array is not None:
            out[: len(rows)] = self.array[rows]
            return out[: len(rows)]
        flat = out.reshape(len(out), -1)
        with open(self.path, "rb", buffering=0) as f:
            start = 0
            while start < len(rows):
                end = start + 1
                while end < len(rows) and rows[end] == rows[end - 1] + 1:
                    end += 1
                view = memoryview(flat[start:end]).cast("B")
                got = os.preadv(f.fileno(), [view], self.offset + int(rows[start]) * self.row_bytes)
                if got != len(view):
                    raise ValueError(f"{self.path} ends early: it is truncated; rerun the data step")
                start = end
        return out[: len(rows)]


# ---------------------------------------------------------------- a split, resident or streamed
class SplitData:
    """What both placements share: labels on the device, normalization, batches and epochs.
    A subclass yields the uint8 N×C×H×W device images of given index batches (`images_of`)."""

    def __init__(self, labels: np.ndarray, mean, std, device, input_size: int, shape):
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.input_size = input_size
        self.height, self.width = shape[:2]
        self.crop_size = input_size or self.width  # the side a random resized crop comes out at

    def __len__(self):
        return len(self.labels)

    def images_of(self, index_batches):
        raise NotImplementedError

    def prepare(self, images: torch.Tensor, opts: TrainOptions | None = None, draws=None) -> torch.Tensor:
        """uint8 images → floats, augmented by draws (training), normalized, at the input size."""
        x = images.float().div_(255)
        if opts is not None:
            x = augment(x, draws, self.crop_size, opts)
        x = x.sub_(self.mean).div_(self.std)  # in place: a 224 px batch of floats is 600 KB an image
        if self.input_size and self.input_size != x.shape[-1]:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    def batch(self, index, opts: TrainOptions | None = None, gen=None):
        """Images index → float batch; augmented when opts and gen are given (training)."""
        index, draws = torch.as_tensor(index), None
        if opts is not None:
            draws = draw_augmentation(len(index), self.height, self.width, self.crop_size, opts, gen)
        images = next(iter(self.images_of([index])))
        return self.prepare(images, opts, draws), self.labels[index.to(self.labels.device)]

    def epoch(self, batch_size: int, opts: TrainOptions, gen: torch.Generator, rank: int = 0, world: int = 1):
        """One pass in an order drawn from gen: augmented (x, y) batches of batch_size (the last
        one smaller when batch_size does not divide the split); of each, the rank's shard."""
        order = torch.randperm(len(self), generator=gen)
        batches = [order[start : start + batch_size] for start in range(0, len(self), batch_size)]
        parts = [shard(len(index), rank, world) for index in batches]
        images = self.images_of([index[part] for index, part in zip(batches, parts, strict=True)])
        for index, part, rows in zip(batches, parts, images, strict=True):
            draws = draw_augmentation(len(index), self.height, self.width, self.crop_size, opts, gen)
            yield (
                self.prepare(rows, opts, shard_of(draws, part)),
                self.labels[index[part].to(self.labels.device)],
            )

    def in_order(self, batch_size: int):
        """The whole split unaugmented, in order: (x, y) batches for evaluation."""
        batches = [
            torch.arange(start, min(start + batch_size, len(self)))
            for start in range(0, len(self), batch_size)
        ]
        for index, rows in zip(batches, self.images_of(batches), strict=True):
            yield self.prepare(rows), self.labels[index.to(self.labels.device)]


class DeviceData(SplitData):
    """One split as uint8 N×C×H×W on the device, from an array or (in chunks) from its file."""

    def __init__(self, images, labels, mean, std, device, input_size=0):
        shape = images.shape[1:]
        super().__init__(labels, mean, std, device, input_size, shape)
        if isinstance(images, Rows):
            self.images = torch.empty((len(images), 3, *shape[:2]), dtype=torch.uint8, device=device)
            chunk = max(1, (64 << 20) // images.row_bytes)  # 64 MiB of host memory at a time
            buffer = np.empty((min(chunk, len(images)), *shape), np.uint8)
            for start in range(0, len(images), chunk):
                rows = images.read(np.arange(start, min(start + chunk, len(images))), buffer)
                self.images[start : start + len(rows)] = torch.from_numpy(rows).to(device).permute(0, 3, 1, 2)
        else:  # an array (a read-only memory map is copied: torch wants writable memory)
            images = np.ascontiguousarray(images) if images.flags.writeable else np.array(images)
            self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()

    def images_of(self, index_batches):
        for index in index_batches:
            yield self.images[index.to(self.images.device)]


class StreamedData(SplitData):
    """One split read batch by batch from its file (Rows): a background thread reads the next
    PREFETCH batches' rows into pinned host buffers while the device trains on the current one,
    and each arrives by an asynchronous copy. Host memory: PREFETCH + 1 batches."""

    def __init__(self, rows: Rows, labels, mean, std, device, input_size=0):
        super().__init__(labels, mean, std, device, input_size, rows.row_shape)
        self.rows, self.device = rows, torch.device(device)

    def images_of(self, index_batches):
        index_batches = [index.numpy() for index in index_batches]
        if not index_batches:
            return
        largest = max(len(index) for index in index_batches)
        pinned = self.device.type == "cuda"
        free, ready = queue.Queue(), queue.Queue(maxsize=PREFETCH)
        for _ in range(PREFETCH + 1):
            buffer = torch.empty((largest, *self.rows.row_shape), dtype=torch.uint8, pin_memory=pinned)
            free.put((buffer, None))

        def read_ahead():
            try:
                for index in index_batches:
                    buffer, copied = free.get()
                    if buffer is None:  # the training thread stopped taking batches
                        return
                    if copied is not None:
                        copied.synchronize()  # the buffer's last copy to the device is done
                    self.rows.read(index, buffer.numpy())
                    ready.put((buffer, len(index)))
            except BaseException as error:  # handed to the training thread, which raises it
                ready.put((error, 0))

        reader = threading.Thread(target=read_ahead, daemon=True, name="labbook-stream")
        reader.start()
        try:
            for _ in index_batches:
                buffer, n = ready.get()
                if isinstance(buffer, BaseException):
                    raise buffer
                if pinned:
                    images = buffer[:n].to(self.device, non_blocking=True)
                    copied = torch.cuda.Event()
                    copied.record()
                else:  # a copy: the buffer is read into again while the batch is still in use
                    images, copied = buffer[:n].to(self.device, copy=True), None
                free.put((buffer, copied))
                yield images.permute(0, 3, 1, 2).contiguous()  # the resident layout: the same math
        finally:  # also when training stops early (a diverged step): the reader ends
            free.put((None, None))
            while reader.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass


# ---------------------------------------------------------------- where each split lives
def free_memory(device: torch.device) -> int:
    """Bytes free on the device: CUDA's own count, else the host's available memory, and no more
    than the job's memory limit leaves (a Slurm job's cgroup: the node may have far more)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    left = cgroup_memory_left()
    return max(0, free if left is None else min(free, left))


def cgroup_memory_left(root=Path("/sys/fs/cgroup"), membership=Path("/proc/self/cgroup")) -> int | None:
    """Bytes this process's memory cgroup may still use (its limit less its usage), or None when
    it has no limit: cgroup v2's memory.max/memory.current, else v1's memory controller."""
    try:
        groups = dict(line.split(":", 2)[1:] for line in membership.read_text().splitlines())
    except (OSError, ValueError):
        return None
    places = []
    if "memory" in groups:  # v1
        places.append(
            (root / "memory" / groups["memory"].lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes")
        )
    if "" in groups:  # v2
        places.append((root / groups[""].lstrip("/"), "memory.max", "memory.current"))
    for folder, limit_file, usage_file in places:
        try:
            limit = (folder / limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:  # v1 writes "no limit" as a huge number
                return int(limit) - int((folder / usage_file).read_text())
        except (OSError, ValueError):
            continue
    return None


def placements(sizes: dict, placement: str, free: int) -> dict:
    """{split: "resident" or "streamed"}; sizes: split → bytes. `auto` keeps splits resident,
    smallest first, while together they fit RESIDENT_SHARE of free bytes, and streams the rest."""
    if placement != "auto":
        return {split: placement for split in sizes}
    budget, chosen = RESIDENT_SHARE * free, {}
    for split in sorted(sizes, key=sizes.get):
        chosen[split] = "resident" if sizes[split] <= budget else "streamed"
        budget -= sizes[split] if chosen[split] == "resident" else 0
    return {split: chosen[split] for split in sizes}


def load_splits(data_dir, opts: TrainOptions, inputs: dict, device, gen, processes: int = 1) -> tuple:
    """(train, val, test) of the data step's arrays, each resident or streamed (placements; the
    host's memory is shared by `processes` on a CPU), normalized and sized as `inputs` say
    (export.preprocessing); a train subset is the generator's first draw (val and test are
    always whole). Returns the splits and {split: placement}."""
    from . import arrays

    loaded = {split: arrays.load_split(data_dir, split) for split in ("train", "val", "test")}
    rows = {split: Rows(images) for split, (images, _) in loaded.items()}
    labels = {split: labels for split, (_, labels) in loaded.items()}
    if opts.train_subset and opts.train_subset < len(labels["train"]):
        keep = torch.randperm(len(labels["train"]), generator=gen)[: opts.train_subset].sort().values.numpy()
        rows["train"], labels["train"] = Rows(loaded["train"][0], keep), labels["train"][keep]
    device = torch.device(device)
    free = free_memory(device) // (processes if device.type != "cuda" else 1)
    chosen = placements({split: r.nbytes for split, r in rows.items()}, opts.data_placement, free)
    args = (inputs["mean"], inputs["std"], device, inputs["input_size"])
    kinds = {"resident": DeviceData, "streamed": StreamedData}
    return tuple(kinds[chosen[split]](rows[split], labels[split], *args) for split in rows), chosen
