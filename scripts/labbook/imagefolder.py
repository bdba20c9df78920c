"""Any folder of images laid out by class, decoded once into uint8 arrays: for the data step
split by split, chunk by chunk in worker processes, each chunk written to the split's file as it
comes (load_kind's Streams; arrays.write_loaded), so no split is ever held whole in memory.

    root/train/<class>/**/*.jpg     training images; class names are the folder names, sorted
    root/test/<class>/...           the test split; else root/val/<class>/...; else a stratified,
                                    seeded `holdout` fraction of train/ becomes the test split
    root/val/<class>/...            beside test/: the validation split (without test/ it is the
                                    test split, above; the validation split is then `val_size`
                                    of train/, arrays.write_loaded)

Every image (any size; any mode: RGB, L, P, RGBA, CMYK, 16-bit, float, ...; any format Pillow reads) becomes RGB of
image_size × image_size, either squeezed to that size (`fixed`) or scaled so its shorter side fits
and then centre-cropped (`shorter_center_crop`). Files that cannot be read are skipped and
reported, or, with strict, stop the step. Hidden files and files whose extension is not an image
extension are ignored, as torchvision's ImageFolder does.
"""

import collections
import functools
import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .plan.kinds.kind import Loaded, Stream
from .plan.sources import (
    EVAL_FOLDERS,
    IMAGE_EXTENSIONS,
    combine_digests,
    eval_folder,
    list_images,
    printable,
    val_folder,
)
from .splits import stratified_holdout

RESIZE_MODES = ("shorter_center_crop", "fixed")
CHUNK = 256  # files per task handed to a worker process: big enough to amortize the hand-over
CHUNK_BYTES = 16 << 20  # and at most this many decoded bytes (at 224 px: 111 files), which wait in memory


class LayoutError(ValueError):
    """The folder does not have the layout described above; the message names the folder."""


def _check_classes(split_dir: Path, images: dict) -> None:
    if not images:
        raise LayoutError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<images>")
    for name, paths in images.items():
        if not paths:
            raise LayoutError(
                f"class folder {printable(split_dir / name)} holds no images "
                f"(extensions read: {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )


def plan_splits(root, holdout: float, seed: int):
    """(classes, [(path, label)] for train, the same for test, where the test split comes from,
    [(path, label)] for val or None when val_size of train/ will be)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"dataset root {root} does not exist")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise LayoutError(f"{root} has no train/ folder: expected {root}/train/<class>/<images>")
    train = list_images(train_dir)
    _check_classes(train_dir, train)
    classes = sorted(train)
    if len(classes) < 2:
        raise LayoutError(
            f"{train_dir} has one class folder ({printable(classes[0])}): a classifier needs at "
            "least two classes, and one class would score 100% accuracy"
        )
    val_dir = val_folder(root)
    val = _labelled(classes, _folder_split(val_dir, train_dir, classes)) if val_dir else None
    test_dir = eval_folder(root)
    if test_dir is not None:
        test = _folder_split(test_dir, train_dir, classes)
        return classes, _labelled(classes, train), _labelled(classes, test), test_dir.name, val
    # No test folder: hold out the same fraction of every class, chosen by the seed.
    if not 0 < holdout < 1:
        raise LayoutError(f"{root} has no test/ or val/ folder and holdout {holdout} is not in (0, 1)")
    labelled = _labelled(classes, train)
    folders = [printable(train_dir / name) for name in classes]
    try:
        held = set(stratified_holdout([label for _, label in labelled], holdout, seed, "test", folders))
    except ValueError as error:
        raise LayoutError(f"class folder {error}; add images or a test/ folder") from None
    kept = [item for i, item in enumerate(labelled) if i not in held]
    test = [item for i, item in enumerate(labelled) if i in held]
    return classes, kept, test, f"holdout {holdout} of train", val


def _folder_split(split_dir: Path, train_dir: Path, classes: list) -> dict:
    """{class: image paths} of a test or val folder, which must have train/'s classes."""
    images = list_images(split_dir)
    _check_classes(split_dir, images)
    for name in classes:
        if name not in images:
            raise LayoutError(
                f"class {printable(name)!r} has no folder {printable(split_dir / name)} in the "
                f"{split_dir.name} split"
            )
    extra = sorted(printable(name) for name in set(images) - set(classes))
    if extra:
        raise LayoutError(f"{split_dir} has class folder(s) {extra} that {train_dir} lacks")
    return images


def _labelled(classes, images: dict) -> list[tuple[Path, int]]:
    return [(path, label) for label, name in enumerate(classes) for path in images[name]]


def to_8bit(image: Image.Image) -> Image.Image:
    """An L image from a high-bit-depth one: 16-bit modes (I;16, I;16B, ...: 16-bit PNGs and
    TIFFs) scaled 65535 → 255; I (32-bit) taken as 16-bit when its values fit 0–65535, else
    stretched from its minimum to its maximum; F (float) taken as 0–1 when its values fit, else
    like I. Pillow's own conversion clips these to 0–255: a 16-bit photo comes out near white."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif image.mode.startswith("I;16") or (low >= 0 and high <= 65535):
        scaled = values / 257
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent pixels shown on white (not on whatever colour they happen to store).
    Handles every mode Pillow has (tests/hostile/test_bit_depths.py checks each)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = to_8bit(image)
    if image.mode == "La":  # premultiplied grey + alpha: Pillow converts it to nothing else
        grey, alpha = np.asarray(image, dtype=np.float64).transpose(2, 0, 1)
        straight = np.divide(grey * 255, alpha, out=np.zeros_like(grey), where=alpha > 0)
        pixels = np.stack([np.clip(np.rint(straight), 0, 255), alpha], -1).astype(np.uint8)
        image = Image.fromarray(pixels, "LA")
    if image.mode in ("RGBA", "RGBa", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


def decode_bytes(data: bytes, size: int, resize: str) -> np.ndarray:
    """One encoded image → uint8 size×size×3. Raises on anything Pillow cannot fully decode."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the target:
            # much faster for photos, and both modes resize from at least size×size anyway.
            image.draft("RGB", (size, size))
        image = to_rgb(ImageOps.exif_transpose(image))
    if image.size != (size, size):
        if resize == "fixed":
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        else:
            image = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def decode_file(path, size: int, resize: str):
    """(image or None, md5 of the bytes or None, reason it was skipped or None)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return None, None, f"unreadable: {error.strerror or error}"
    digest = hashlib.md5(data).hexdigest()
    if not data:
        return None, digest, "empty file (0 bytes)"
    try:
        return decode_bytes(data, size, resize), digest, None
    except UnidentifiedImageError:
        return None, digest, "cannot decode: not an image format Pillow reads"
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError…
        return None, digest, f"cannot decode: {type(error).__name__}: {error}"


def decode_chunk(paths, size: int, resize: str):
    """Decode a list of files in one worker: (images of the readable ones, per-file results)."""
    images, results = [], []
    for path in paths:
        image, digest, reason = decode_file(path, size, resize)
        if image is not None:
            images.append(image)
        results.append((digest, reason))
    stacked = np.stack(images) if images else np.empty((0, size, size, 3), np.uint8)
    return stacked, results


def files_per_chunk(size: int) -> int:
    """CHUNK, or fewer for large images: at most CHUNK_BYTES of decoded pixels per task."""
    return max(1, min(CHUNK, CHUNK_BYTES // (size * size * 3)))


def decode_chunks(paths, size: int, resize: str, threads: int = 1):
    """Decode paths chunk by chunk, in `threads` processes where there are several chunks;
    yields, per chunk in order, (uint8 images of its readable files, [(md5 or None, reason or
    None)] per file). At most two chunks per process are in flight: decoded chunks waiting to
    be taken stay few."""
    step = files_per_chunk(size)
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    if threads <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield decode_chunk(chunk, size, resize)
        return
    workers = min(threads, len(chunks))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(decode_chunk, chunk, size, resize))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a consumer that stops early (an error writing) waits for no more chunks
            for future in pending:
                future.cancel()


def decode_all(paths, size: int, resize: str, threads: int = 1):
    """Decode every path, in `threads` processes: (uint8 images of the readable files in order,
    [(md5 or None, reason or None)] per path)."""
    parts = list(decode_chunks(paths, size, resize, threads))
    images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, size, size, 3), np.uint8)
    return images, [r for p in parts for r in p[1]]


class Decoding:
    """An image folder's splits (plan_splits), decoded split by split in chunks (chunks()); it
    records what decoding showed (each file's MD5, the files skipped, the readable images per
    class), and check() raises what is wrong with it once every split is decoded."""

    def __init__(self, root, image_size=32, resize="shorter_center_crop", holdout=0.1, seed=0,
                 strict=False, threads=1):  # fmt: skip
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize {resize!r} unknown; choose one of {RESIZE_MODES}")
        self.root = Path(root)
        self.classes, train, test, self.test_source, val = plan_splits(self.root, holdout, seed)
        self.planned = {"train": train, "test": test, **({"val": val} if val else {})}
        self.size, self.resize, self.strict, self.threads = image_size, resize, strict, threads
        self.digests, self.skipped, self.readable = {}, [], {}

    @property
    def class_names(self) -> list[str]:
        """Class names are shown and stored (manifest, report): a name that is not UTF-8 as \\xNN."""
        return [printable(name) for name in self.classes]

    def chunks(self, split: str):
        """The split's (uint8 images, int64 labels) of its readable files, chunk by chunk, in
        the planned order; read once."""
        files = self.planned[split]
        readable = np.zeros(len(self.classes), np.int64)
        start = 0  # position of the chunk's first file in `files`
        for images, results in decode_chunks(
            [path for path, _ in files], self.size, self.resize, self.threads
        ):
            labels = []
            for (path, label), (digest, reason) in zip(
                files[start : start + len(results)], results, strict=True
            ):
                self.digests[path.relative_to(self.root).as_posix()] = digest
                if reason is None:
                    labels.append(label)
                else:
                    self.skipped.append({"path": printable(path), "reason": reason})
            start += len(results)
            labels = np.array(labels, np.int64)
            readable += np.bincount(labels, minlength=len(self.classes))
            yield images, labels
        self.readable[split] = readable

    def check(self) -> None:
        """Once every split is decoded: with strict, any file skipped is an error listing them
        all; a class left with no readable image in a split is an error naming its folder."""
        if self.skipped and self.strict:
            listing = "\n".join(f"  {s['path']}: {s['reason']}" for s in self.skipped)
            raise ValueError(
                f"{len(self.skipped)} file(s) under {self.root} could not be read (strict: true):\n{listing}"
            )
        for split, readable in self.readable.items():
            folder = {"test": self.test_source, "val": "val"}.get(split, "train")
            folder = folder if folder in EVAL_FOLDERS else "train"
            for label, name in enumerate(self.classes):
                if not readable[label]:
                    raise LayoutError(
                        f"class folder {printable(self.root / folder / name)} has no readable image for {split}"
                    )

    def stream(self, split: str) -> Stream:
        """The split for the data step, decoded as it is written (arrays.write_loaded)."""
        shape = (self.size, self.size, 3)
        return Stream(len(self.planned[split]), shape, functools.partial(self.chunks, split))


def load(root, image_size=32, resize="shorter_center_crop", holdout=0.1, seed=0, strict=False, threads=1):
    """The folder decoded in memory (the data step streams it instead: load_kind):
    (classes, {"train": (images, labels), "test": ...}, skipped, {relative path: md5}, test source)."""
    decoding = Decoding(root, image_size, resize, holdout, seed, strict, threads)
    splits = {}
    for split in decoding.planned:
        parts = list(decoding.chunks(split))
        empty = (np.empty((0, image_size, image_size, 3), np.uint8), np.empty(0, np.int64))
        splits[split] = tuple(np.concatenate([p[i] for p in parts]) if parts else empty[i] for i in (0, 1))
    decoding.check()
    return decoding.class_names, splits, decoding.skipped, decoding.digests, decoding.test_source


def load_kind(options: dict, threads: int = 1) -> Loaded:
    """The data step's loader of `kind: imagefolder` (plan/kinds/imagefolder.py): each split a
    Stream, decoded chunk by chunk as the data step writes it; finish() checks what decoding
    showed and sets the source hash from every file's MD5."""
    names = ("root", "image_size", "resize", "holdout", "seed", "strict")
    decoding = Decoding(*(options[k] for k in names), threads)
    splits = {split: decoding.stream(split) for split in decoding.planned}
    source = {"test_split": decoding.test_source, **({"val_split": "val"} if "val" in splits else {})}
    loaded = Loaded(decoding.class_names, splits, "", decoding.skipped, source)

    def finish():
        decoding.check()
        loaded.source_hash = combine_digests(decoding.digests)

    loaded.finish = finish
    return loaded
