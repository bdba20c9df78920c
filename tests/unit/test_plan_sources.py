"""Where a dataset's files and their fingerprint come from (labbook/plan/sources.py): the digest
cache that spares reading unchanged files, how digests combine, which files are images, and
file names shown printably."""

import json
import os
from pathlib import Path

from builders import image_folder
from labbook.plan import datasets, sources


def test_a_warm_digest_cache_reads_no_file(tmp_path, monkeypatch):
    root = image_folder(
        tmp_path / "data", ("class0", "class1"), 3, colour={"class0": (220, 20, 20), "class1": (30, 40, 210)}
    )
    spec = {"name": "x", "kind": "imagefolder", "root": str(root)}
    cache_file = tmp_path / "digests.json"
    read = []
    real_md5 = sources.file_md5
    monkeypatch.setattr(sources, "file_md5", lambda path: read.append(Path(path).name) or real_md5(path))

    cold = datasets.fingerprint(spec, cache_file)
    assert len(read) == 12, "a cold cache reads every file once"
    assert len(json.loads(cache_file.read_text())) == 12
    read.clear()
    assert datasets.fingerprint(spec, cache_file) == cold
    assert read == [], "a warm cache only stats the files"

    touched = root / "train" / "class0" / "1.png"
    os.utime(touched, ns=(1, 1))
    assert datasets.fingerprint(spec, cache_file) == cold
    assert read == ["1.png"], "a touched file is read again, and only it"
    read.clear()
    assert datasets.fingerprint(spec, cache_file) == cold and read == []
    # no cache file: every look reads everything
    datasets.fingerprint(spec)
    assert len(read) == 12


def test_digest_cache_notices_a_same_size_edit_and_survives_damage(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"aaaa")
    cache = sources.DigestCache(tmp_path / "c.json")
    first = cache.md5(path)
    cache.save()
    path.write_bytes(b"bbbb")  # same size
    os.utime(path, ns=(10**18, 10**18))
    assert sources.DigestCache(tmp_path / "c.json").md5(path) == sources.file_md5(path) != first
    (tmp_path / "c.json").write_text("{not json")
    assert sources.DigestCache(tmp_path / "c.json").md5(path) == sources.file_md5(path)
    assert sources.DigestCache(tmp_path / "c.json").md5(tmp_path / "missing") is None


def test_the_digest_cache_file_may_live_in_a_new_folder_and_is_not_rewritten_when_warm(tmp_path):
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    cache_file = tmp_path / "new" / "deeper" / "digests.json"
    cold = sources.DigestCache(cache_file)
    cold.md5(data)
    cold.save()
    written = cache_file.stat().st_mtime_ns
    os.utime(cache_file, ns=(1, 1))
    warm = sources.DigestCache(cache_file)
    assert warm.md5(data) == sources.file_md5(data)
    warm.save()
    assert cache_file.stat().st_mtime_ns == 1, "nothing new learned: the cache file is left alone"
    assert written != 1
    in_memory = sources.DigestCache()
    assert in_memory.md5(data) == sources.file_md5(data) and in_memory.md5(data) == sources.file_md5(data)
    in_memory.save()  # no file to write: nothing happens


def test_combine_digests_changes_with_any_path_or_digest():
    base = {"a/1.png": "x", "b/2.png": "y"}
    reference = sources.combine_digests(base)
    assert sources.combine_digests(dict(reversed(base.items()))) == reference, "order does not matter"
    variants = [{"a/1.png": "x"}, {**base, "c.png": "z"}, {"a/1.png": "x", "b/3.png": "y"},
                {"a/1.png": "x", "b/2.png": "w"}, {"a/1.png": "x", "b/2.png": None}]  # fmt: skip
    hashes = {sources.combine_digests(v) for v in variants}
    assert reference not in hashes and len(hashes) == len(variants)


def test_list_images_walks_subfolders_and_skips_hidden_ones(tmp_path):
    split = tmp_path / "train"
    for relative in ("cat/a.png", "cat/2019/b.PNG", "cat/2019/deep/c.jpeg", "cat/.cache/d.png",
                     "cat/notes.txt", ".thumbs/x/e.png", "dog/f.webp"):  # fmt: skip
        (split / relative).parent.mkdir(parents=True, exist_ok=True)
        (split / relative).write_bytes(b"x")
    found = sources.list_images(split)
    assert list(found) == ["cat", "dog"], "hidden folders are no classes"
    assert [p.relative_to(split).as_posix() for p in found["cat"]] == [
        "cat/2019/b.PNG",
        "cat/2019/deep/c.jpeg",
        "cat/a.png",
    ]
    assert sources.list_images(tmp_path / "absent") == {}


def test_printable_shows_undecodable_bytes_of_a_file_name():
    assert sources.printable("caf\udcff.png") == "caf\\xff.png"
    assert sources.printable("café.png") == "café.png"
