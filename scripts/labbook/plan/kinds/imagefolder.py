"""`kind: imagefolder`: photos in class folders, `root/train/<class>/` and `root/test/<class>/`
(or `val/`; without either, a seeded `holdout` fraction of train/ is the test split). Decoding
is labbook.imagefolder."""

from pathlib import Path

from .. import sources
from .kind import Kind

DECODE_IMAGES_PER_S = 50  # per thread, JPEGs: generous for slow disks


def size(options: dict) -> tuple[int, int, int]:
    """Counted from its files (0 when root is not there yet: the data step will say so)."""
    root = Path(options["root"])
    train = sum(len(paths) for paths in sources.list_images(root / "train").values())
    evaluation = sources.eval_folder(root)
    if evaluation is not None:
        test = sum(len(paths) for paths in sources.list_images(evaluation).values())
    else:
        test = round(train * options["holdout"])
        train -= test
    return train, test, options["image_size"]


def fingerprint(options: dict, digests) -> str:
    """Every image's relative path and MD5."""
    root = Path(options["root"])
    found = {p.relative_to(root).as_posix(): digests.md5(p) for p in sources.imagefolder_files(root)}
    return sources.combine_digests(found)


def classes(options: dict) -> int | None:
    train_dir = Path(options["root"]) / "train"
    if not train_dir.is_dir():
        return None
    return sum(1 for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def prepare_minutes(options: dict, size: tuple, threads: int) -> float:
    train, test, _ = size
    return (train + test) / (DECODE_IMAGES_PER_S * max(threads, 1)) / 60


def check(options: dict) -> None:
    if not Path(options["root"]).is_dir():
        raise ValueError(
            f"dataset.root: {options['root']} is not a folder (train/<class>/ images expected there)"
        )


KIND = Kind(
    name="imagefolder",
    defaults={
        "root": None,
        "image_size": 32,
        "resize": "shorter_center_crop",
        "holdout": 0.1,
        "val_size": 0.1,
        "seed": 0,
        "strict": False,
    },
    size=size,
    fingerprint=fingerprint,
    loader="labbook.imagefolder:load_kind",
    classes=classes,
    prepare_minutes=prepare_minutes,
    default_name="imagefolder",
    streams=True,
    check=check,
)
