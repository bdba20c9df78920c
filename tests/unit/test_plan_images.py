"""The images a predict step is given (labbook/plan/images.py): image files from a folder or a
list, with clear errors; their fingerprint follows their content, not a touch."""

import pytest
from labbook.plan import images


def test_image_paths_from_a_folder_or_a_list_and_clear_errors(tmp_path):
    for name in ("a.png", "sub/b.JPG", ".hidden.png", "notes.txt", ".cache/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert images.image_paths(tmp_path) == [tmp_path / "a.png", tmp_path / "sub" / "b.JPG"]
    assert images.image_paths([str(tmp_path / "notes.txt"), tmp_path / "sub"]) == [
        tmp_path / "notes.txt",  # named explicitly: the user asked for it
        tmp_path / "sub" / "b.JPG",
    ]
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        images.image_paths([tmp_path / "missing-folder"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files under .*empty"):
        images.image_paths(tmp_path / "empty")


def test_images_fingerprint_changes_with_content_not_with_a_touch(tmp_path):
    (tmp_path / "a.png").write_bytes(b"one")
    cache_file = tmp_path / "md5.json"
    first = images.images_fingerprint(str(tmp_path), cache_file)
    (tmp_path / "a.png").touch()
    assert images.images_fingerprint(str(tmp_path), cache_file) == first
    (tmp_path / "a.png").write_bytes(b"two")
    assert images.images_fingerprint(str(tmp_path), cache_file) != first
    assert images.images_fingerprint(str(tmp_path / "gone"), cache_file).startswith("unavailable")
