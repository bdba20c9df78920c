"""`kind: cifar10`: CIFAR-10's python version in `root` (downloaded there when missing and
`download: true`). The reader is labbook.cifar10."""

from pathlib import Path

from ..sources import combine_digests
from .kind import Kind

CLASSES = 10
IMAGES = (50000, 10000, 32)  # training, test, side
FOLDER = "cifar-10-batches-py"
FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
# torchvision's CIFAR10.train_list, test_list and meta checksums (tests/unit/test_cifar10.py checks
# they still agree). Tests that fabricate a folder put their own checksums here.
MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
DOWNLOAD_MINUTES = 10  # 163 MB download, MD5 checks, unpickling (before limits.SAFETY)
DOWNLOAD_RETRIES = 2  # a dropped connection should not end a run


def fingerprint(options: dict, digests) -> str:
    """The batch files' MD5s; CIFAR-10's published ones for files still to be downloaded, so the
    download itself changes nothing."""
    folder = Path(options["root"]) / FOLDER
    found = {}
    for name in FILES:
        found[name] = digests.md5(folder / name)
        if found[name] is None and options["download"]:
            found[name] = MD5[name]
    return combine_digests(found)


def check(options: dict) -> None:
    folder = Path(options["root"]) / FOLDER
    if not options["download"] and not folder.is_dir():
        raise ValueError(
            f"dataset.root: {folder} does not exist and download is false; "
            "put CIFAR-10's python version there or set download: true"
        )


KIND = Kind(
    name="cifar10",
    defaults={"root": "data/cifar10", "download": True, "verify": True, "val_size": 5000, "seed": 0},
    size=lambda o: IMAGES,
    fingerprint=fingerprint,
    loader="labbook.cifar10:load_kind",
    classes=lambda o: CLASSES,
    prepare_minutes=lambda o, size, threads: DOWNLOAD_MINUTES,
    # reading local files fails the same way again: only a download is retried
    retries=lambda o: DOWNLOAD_RETRIES if o["download"] else None,
    default_name="cifar10",
    check=check,
)
