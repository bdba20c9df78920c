"""Which source files a dataset reads, and one hash of their content. Standard library only:
the workflow fingerprints the sources (plan.datasets.fingerprint) when it builds the job graph,
inside Snakemake's own Python, which need not have numpy or Pillow.
"""

import hashlib
import json
import os
from pathlib import Path

# ImageFolder layout (see imagefolder.py).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
EVAL_FOLDERS = ("test", "val")  # the first one present is the test split


def file_md5(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def printable(path) -> str:
    """A path as text that can be shown and stored anywhere. A file name that is not valid
    UTF-8 (any byte string is a valid Linux name) reaches Python with its odd bytes as lone
    surrogates, which no UTF-8 file or page takes; they are shown as \\xNN here."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def combine_digests(digests: dict) -> str:
    """One hash over {relative path: MD5}: changes when a file is added, removed, renamed or
    edited. A digest of None (an unreadable file) counts as such. Names are hashed as the file
    system's bytes, so any name works."""
    h = hashlib.sha256()
    for path in sorted(digests):
        h.update(os.fsencode(path) + f"\t{digests[path] or 'unreadable'}\n".encode())
    return h.hexdigest()


def eval_folder(root) -> Path | None:
    for name in EVAL_FOLDERS:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def val_folder(root) -> Path | None:
    """root/val/ is the validation split beside a root/test/; alone, it is the test split (the
    transfer-learning tutorial's train/ + val/ layout reports on val/)."""
    root = Path(root)
    return root / "val" if (root / "test").is_dir() and (root / "val").is_dir() else None


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def list_images(split_dir) -> dict[str, list[Path]]:
    """{class folder name: sorted image paths under it, at any depth}; {} when split_dir is absent.
    Hidden files and folders, and files without an image extension, are not listed."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        return {}
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    images = {}
    for name in classes:
        found = []
        for folder, subfolders, files in os.walk(split_dir / name):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            found += [Path(folder) / f for f in files if is_image_name(f)]
        images[name] = sorted(found)
    return images


def imagefolder_files(root) -> list[Path]:
    """Every image file an ImageFolder dataset reads: train/, its test folder, its val folder."""
    folders = [Path(root) / "train", eval_folder(root), val_folder(root)]
    return sorted(p for folder in folders if folder for paths in list_images(folder).values() for p in paths)


class DigestCache:
    """MD5s of files remembered by (size, mtime) in a JSON file: an untouched file is not read
    again, and one touched but unchanged is read once more and hashes the same."""

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.entries = {}
        if self.path and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except ValueError:  # a damaged cache only costs time
                self.entries = {}
        self.changed = False

    def md5(self, path) -> str | None:
        """The file's MD5, or None when it cannot be read."""
        try:
            stat = os.stat(path)
            key = os.path.abspath(path)
            known = self.entries.get(key)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
                return known[2]
            digest = file_md5(path)
        except OSError:
            return None
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path and self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            try:
                tmp.write_text(json.dumps(self.entries))
                os.replace(tmp, self.path)
            except OSError:  # a full disk: the cache only saves time, the next run hashes again
                tmp.unlink(missing_ok=True)
