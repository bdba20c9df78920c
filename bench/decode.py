"""Decode rate of an ImageFolder: labbook's parallel decoder against a plain one-process PIL loop.

    python bench/decode.py ROOT [--threads 2] [--size 32] [--limit N]

ROOT is an ImageFolder (e.g. the shared CIFAR-10 JPEG copy extracted: ROOT/train/<class>/*.jpg).
Both ways decode the same files to the same uint8 arrays (checked); the plain loop is what one
writes by hand: open, convert to RGB, resize, np.asarray, one file after another.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from labbook import imagefolder
from labbook.plan import sources
from PIL import Image


def plain_loop(paths, size):
    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        images.append(np.asarray(image, dtype=np.uint8))
    return np.stack(images)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    args = parser.parse_args()

    paths = sources.imagefolder_files(args.root)
    if args.limit:
        paths = paths[: args.limit]
    print(f"{len(paths)} files under {args.root}, to {args.size}×{args.size}")

    start = time.perf_counter()
    plain = plain_loop(paths, args.size)
    plain_s = time.perf_counter() - start

    start = time.perf_counter()
    parallel, results = imagefolder.decode_all(paths, args.size, "fixed", args.threads)
    parallel_s = time.perf_counter() - start

    skipped = [r for r in results if r[1] is not None]
    if skipped or not np.array_equal(plain, parallel):
        raise SystemExit(f"outputs differ ({len(skipped)} skipped): the comparison is not fair")
    plain_rate, parallel_rate = len(paths) / plain_s, len(paths) / parallel_s
    print(f"plain PIL loop, 1 process : {plain_rate:8.0f} images/s ({plain_s:.1f} s)")
    print(f"labbook, {args.threads} processes     : {parallel_rate:8.0f} images/s ({parallel_s:.1f} s)")
    print(f"ratio                     : {parallel_rate / plain_rate:.2f}×  (identical arrays)")


if __name__ == "__main__":
    main()
