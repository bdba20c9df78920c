"""CIFAR-10 from torchvision's python format: root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}.

A root that already holds the batches is used as is, after checking each file's MD5 against the
checksums torchvision publishes; a missing one is downloaded when the config allows it. The
batches are pickles of numpy arrays: they are read with numpy and a restricted unpickler (only
numpy arrays and plain values may come out of them), so this step needs no torch.
"""

import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from .plan.kinds import cifar10 as kind
from .plan.kinds.cifar10 import FILES, FOLDER
from .plan.kinds.kind import Loaded
from .plan.sources import combine_digests, file_md5

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_FILES = FILES[:5]
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"

# What a CIFAR-10 batch pickle may construct: numpy arrays and the helpers that rebuild them.
# Anything else in a file (a pickle can run arbitrary code) is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
}


class CorruptFileError(ValueError):
    pass


def batches_dir(root) -> Path:
    return Path(root) / FOLDER


def missing_files(root) -> list[str]:
    return [name for name in FILES if not (batches_dir(root) / name).is_file()]


def _where_to_place(root) -> str:
    return (
        f"Place CIFAR-10's python version there yourself: extract {ARCHIVE} (from {URL}) into "
        f"{Path(root)} so that {batches_dir(root)}/ holds {', '.join(FILES)}."
    )


def download(root) -> None:
    """Fetch and unpack the archive into root with torchvision's downloader (checks its MD5)."""
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError:  # the data step's conda env has no torch: do the same with the stdlib
        download_and_extract_archive = _download_and_extract
    try:
        download_and_extract_archive(URL, download_root=str(root), filename=ARCHIVE, md5=ARCHIVE_MD5)
    except Exception as error:
        raise RuntimeError(
            f"could not download CIFAR-10 from {URL} into {root}: {error}\n{_where_to_place(root)}"
        ) from error


def _download_and_extract(url, download_root, filename, md5):
    archive = Path(download_root) / filename
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
        for block in iter(lambda: response.read(1 << 20), b""):
            f.write(block)
    if file_md5(partial) != md5:
        raise CorruptFileError(f"{partial}: MD5 does not match {md5}; the download is damaged")
    partial.replace(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(download_root, filter="data")


def ensure_present(root, allow_download: bool) -> Path:
    """The batches folder, downloaded first if it is incomplete and downloading is allowed."""
    missing = missing_files(root)
    if missing and allow_download:
        download(root)
        missing = missing_files(root)
    if missing:
        reason = "download: false" if not allow_download else "the download did not provide them"
        raise FileNotFoundError(
            f"CIFAR-10 files missing in {batches_dir(root)}: {', '.join(missing)} ({reason}).\n"
            + _where_to_place(root)
        )
    return batches_dir(root)


def verify(root, known_md5=None) -> dict:
    """{file name: md5}; raises CorruptFileError naming the first file whose MD5 is not CIFAR-10's."""
    known_md5 = kind.MD5 if known_md5 is None else known_md5
    digests = {}
    for name in FILES:
        path = batches_dir(root) / name
        digests[name] = file_md5(path)
        if digests[name] != known_md5[name]:
            raise CorruptFileError(
                f"{path}: MD5 {digests[name]} is not CIFAR-10's {known_md5[name]}: the file is "
                f"damaged or not from CIFAR-10. Delete it (with download: true it is fetched "
                f"again), or set verify: false for a copy in this format that you made yourself."
            )
    return digests


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a CIFAR-10 batch")
        return super().find_class(module, name)


def _unpickle(path) -> dict:
    try:
        with open(path, "rb") as f:
            content = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as error:
        raise CorruptFileError(f"{path}: not a CIFAR-10 python batch ({error})") from error
    if not isinstance(content, dict):
        raise CorruptFileError(f"{path}: not a CIFAR-10 python batch (holds {type(content).__name__})")
    return content


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file → (uint8 N×32×32×3, int64 labels). Rows hold 1024 red, green, blue values."""
    content = _unpickle(path)
    try:
        data = np.asarray(content[b"data"], dtype=np.uint8)
        labels = np.asarray(content[b"labels"], dtype=np.int64)
    except KeyError as error:
        raise CorruptFileError(f"{path}: no {error.args[0]!r} entry; not a CIFAR-10 batch") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise CorruptFileError(f"{path}: data {data.shape} and {len(labels)} labels are not CIFAR-10's")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_classes(path) -> list[str]:
    names = _unpickle(path).get(b"label_names")
    if not names:
        raise CorruptFileError(f"{path}: no label_names entry; not CIFAR-10's batches.meta")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_split(folder: Path, names) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_batch(folder / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load(root, download: bool = True, verify_md5: bool = True):
    """(classes, {"train": (images, labels), "test": ...}, {file name: md5}) from root."""
    folder = ensure_present(root, download)
    digests = verify(root) if verify_md5 else {name: file_md5(folder / name) for name in FILES}
    classes = read_classes(folder / META_FILE)
    splits = {"train": _read_split(folder, TRAIN_FILES), "test": _read_split(folder, TEST_FILES)}
    for split, (_, labels) in splits.items():
        if labels.min() < 0 or labels.max() >= len(classes):
            raise CorruptFileError(f"{folder}: {split} labels outside 0..{len(classes) - 1}")
    return classes, splits, digests


def load_kind(options: dict, threads: int = 1) -> Loaded:
    """The data step's loader of `kind: cifar10` (plan/kinds/cifar10.py)."""
    classes, splits, digests = load(options["root"], options["download"], options["verify"])
    return Loaded(classes, splits, combine_digests(digests))
