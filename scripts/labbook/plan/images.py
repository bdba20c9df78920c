"""The images `snakemake predict` classifies (config `predict: images:`): listed and fingerprinted
while the job graph is built, standard library only."""

import os
from pathlib import Path

from . import sources


def image_paths(images) -> list[Path]:
    """The image files named by `images`: a folder (searched at any depth) or a list of files and
    folders. Hidden files and files without an image extension are ignored, as in the data step."""
    entries = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    if not entries:
        raise ValueError("predict: no images given (predict: images: a folder or a list of files)")
    found = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            for folder, subfolders, files in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                found += sorted(Path(folder) / f for f in files if sources.is_image_name(f))
        elif path.is_file() or path.is_symlink():
            found.append(path)
        else:
            raise FileNotFoundError(f"predict: image file or folder not found: {path}")
    if not found:
        raise ValueError(
            f"predict: no image files under {', '.join(map(str, entries))} "
            f"(extensions read: {', '.join(sorted(sources.IMAGE_EXTENSIONS))})"
        )
    return found


def images_fingerprint(images, digest_cache=None) -> str:
    """One hash of the images' names and content: new, removed or edited images rerun the step.
    A missing folder is not an error here; the step itself reports it."""
    try:
        paths = image_paths(images)
    except (ValueError, FileNotFoundError) as error:
        return f"unavailable: {error}"
    digests = sources.DigestCache(digest_cache)
    fingerprint = sources.combine_digests({str(p): digests.md5(p) for p in paths})
    digests.save()
    return fingerprint
