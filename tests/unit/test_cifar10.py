"""CIFAR-10 in torchvision's python format, on a tiny fabricated copy of that format."""

import pickle

import numpy as np
import pytest
from labbook import cifar10, prepare
from labbook.plan import datasets, sources
from labbook.plan.kinds import cifar10 as cifar10_kind

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fabricate(root, per_batch=10, seed=0):
    """root/cifar-10-batches-py/ as CIFAR-10 ships it: pickled dicts with bytes keys, rows of
    1024 red then 1024 green then 1024 blue values. Returns {file name: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    written = {}
    for name in (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES):
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=per_batch))
        rows = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(x) for x in labels],
            b"data": rows,
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (images, np.array(labels))
    meta = {b"label_names": [n.encode() for n in NAMES], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(meta, protocol=2))
    return written


@pytest.fixture
def fabricated(tmp_path, monkeypatch):
    """A fabricated root whose files' MD5s stand in for CIFAR-10's published ones."""
    written = fabricate(tmp_path / "cifar")
    for name in cifar10.FILES:
        monkeypatch.setitem(
            cifar10_kind.MD5, name, sources.file_md5(tmp_path / "cifar" / cifar10.FOLDER / name)
        )
    return tmp_path / "cifar", written


def test_checksums_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    known = dict(torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list)
    known[torchvision.datasets.CIFAR10.meta["filename"]] = torchvision.datasets.CIFAR10.meta["md5"]
    assert cifar10_kind.MD5 == known
    assert cifar10.URL == torchvision.datasets.CIFAR10.url
    assert cifar10.ARCHIVE_MD5 == torchvision.datasets.CIFAR10.tgz_md5


def test_reads_the_batches_pixel_for_pixel(fabricated):
    root, written = fabricated
    classes, splits, digests = cifar10.load(root, download=False)
    assert classes == NAMES
    train_images, train_labels = splits["train"]
    assert train_images.shape == (50, 32, 32, 3) and train_images.dtype == np.uint8
    np.testing.assert_array_equal(train_images[10:20], written["data_batch_2"][0])
    np.testing.assert_array_equal(train_labels[10:20], written["data_batch_2"][1])
    np.testing.assert_array_equal(splits["test"][0], written["test_batch"][0])
    assert digests == cifar10_kind.MD5


def test_a_corrupted_file_is_detected_naming_it(fabricated):
    root, _ = fabricated
    batch = root / cifar10.FOLDER / "data_batch_3"
    batch.write_bytes(batch.read_bytes() + b"\0")  # a byte after the pickle's end: still loads
    with pytest.raises(cifar10.CorruptFileError, match=r"data_batch_3: MD5 \w+ is not CIFAR-10's"):
        cifar10.load(root, download=False)
    # verify: false trusts the files
    _, splits, _ = cifar10.load(root, download=False, verify_md5=False)
    assert splits["train"][0].shape == (50, 32, 32, 3)


def test_unchecked_files_must_still_be_cifar_batches(tmp_path):
    fabricate(tmp_path)
    (tmp_path / cifar10.FOLDER / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2, 3]}, protocol=2))
    with pytest.raises(cifar10.CorruptFileError, match="test_batch: no b'labels' entry"):
        cifar10.load(tmp_path, download=False, verify_md5=False)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    fabricate(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    (tmp_path / cifar10.FOLDER / "batches.meta").write_bytes(pickle.dumps({b"label_names": Evil()}))
    with pytest.raises(cifar10.CorruptFileError, match=r"batches.meta.*refusing to load builtins.print"):
        cifar10.load(tmp_path, download=False, verify_md5=False)


def test_missing_files_without_download_say_what_to_place_where(tmp_path):
    fabricate(tmp_path)
    (tmp_path / cifar10.FOLDER / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError) as error:
        cifar10.load(tmp_path, download=False)
    message = str(error.value)
    assert "data_batch_4 (download: false)" in message
    assert f"extract cifar-10-python.tar.gz (from {cifar10.URL}) into {tmp_path}" in message


def test_a_failed_download_says_what_to_place_where(tmp_path, monkeypatch):
    # Port 9 (discard) on this machine refuses at once: the real downloader fails like offline.
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(
        RuntimeError, match=r"could not download CIFAR-10 .* into .*\n.*cifar-10-batches-py/ holds"
    ):
        cifar10.load(tmp_path / "empty", download=True)


def test_prepare_and_fingerprint(fabricated, tmp_path):
    root, _ = fabricated
    spec = {"name": "cifar10", "kind": "cifar10", "root": str(root), "download": False, "val_size": 10}
    manifest = prepare.prepare(spec, tmp_path / "out")
    assert manifest["classes"] == NAMES
    # the validation images come from the 50 training images, the official test set stays test
    assert sum(manifest["counts"]["train"].values()) == 40
    assert sum(manifest["counts"]["val"].values()) == 10
    assert sum(manifest["counts"]["test"].values()) == 10
    assert manifest["image_shape"] == [32, 32, 3]
    assert manifest["source_hash"] == datasets.fingerprint(spec)
    # Not downloaded yet: the fingerprint is that of the files the download will bring.
    empty = {**spec, "root": str(tmp_path / "not-yet"), "download": True}
    assert datasets.fingerprint(empty) == manifest["source_hash"]


@pytest.mark.parametrize("downloader", ["torchvision", "stdlib"])
def test_download_fills_a_missing_root(tmp_path, monkeypatch, downloader):
    """The real download path, from a local web server holding an archive of a fabricated copy."""
    import functools
    import http.server
    import sys
    import tarfile
    import threading

    fabricate(tmp_path / "source")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "source" / cifar10.FOLDER, arcname=cifar10.FOLDER)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(cifar10, "URL", f"http://127.0.0.1:{server.server_port}/{archive.name}")
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", sources.file_md5(archive))
    for name in cifar10.FILES:
        monkeypatch.setitem(
            cifar10_kind.MD5, name, sources.file_md5(tmp_path / "source" / cifar10.FOLDER / name)
        )
    if downloader == "stdlib":  # as in the data step's conda env, which has no torchvision
        monkeypatch.setitem(sys.modules, "torchvision.datasets.utils", None)
    try:
        classes, splits, _ = cifar10.load(tmp_path / "root", download=True)
    finally:
        server.shutdown()
    assert classes == NAMES
    assert (tmp_path / "root" / cifar10.FOLDER / "test_batch").is_file()
    assert len(splits["test"][1]) == 10
