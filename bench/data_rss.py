"""Peak memory of the data step on an image folder whose decoded training split is over 2 GB.

    python bench/data_rss.py                        # in a new folder under /tmp, removed after
    python bench/data_rss.py --keep /data/rss       # leaves /data/rss/photos and /data/rss/data
    python bench/data_rss.py --images 16000 --size 224 --threads 2 --dir /scratch

Fabricates photos/train/<class>/*.jpg and photos/test/<class>/*.jpg (256×256 JPEGs of quality
85, about 12 KB each: noisy, shifted, flipped variants of a few smooth random images per class,
made in parallel), then runs the data step (labbook.prepare.prepare, kind imagefolder, in a
child process) and prints: the training split's size on disk, the child's peak RSS (VmHWM, as
it reports it when done; also the peak sampled every 0.1 s, with and without its decoding
workers), the step's wall time and images/s. The validation split is `val_size` of train/, so
the step also takes the path that holds the training images in a temporary file first.

With --keep DIR the photos and the data folder stay in DIR for reuse (train on them: a config
whose dataset is `{kind: imagefolder, root: DIR/photos, image_size: 224}`); photos already
there with the asked-for count are reused. Needs about images × 0.33 MB of free disk.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CLASSES = 10
SIDE = 256  # of the fabricated JPEGs
BASES = 4  # smooth random images per class

# What the child runs: the data step itself, then its own peak RSS.
CHILD = """
import json, sys, time
from labbook import prepare
spec, out, threads = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
manifest = prepare.prepare(spec, out, threads=threads)
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"seconds": seconds, "vmhwm_kb": int(status["VmHWM"].split()[0]),
                  "counts": manifest["counts"], "skipped": len(manifest["skipped"])}))
"""


def _bases(label: int) -> np.ndarray:
    """BASES smooth random RGB images of one class: an 8×8 field upsampled bicubically."""
    from PIL import Image

    rng = np.random.default_rng(label)
    fields = rng.uniform(0, 255, (BASES, 8, 8, 3)).astype(np.uint8)
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((SIDE, SIDE), Image.Resampling.BICUBIC)) for f in fields]
    )


def _fabricate(task) -> int:
    """Write the JPEGs of one (folder, label, first index, count) task; returns the count."""
    from PIL import Image

    folder, label, first, count = task
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bases = _bases(label).astype(np.int16)
    rng = np.random.default_rng([label, first])
    noise = rng.normal(0, 8, (4, SIDE, SIDE, 3)).astype(np.int16)
    for i in range(first, first + count):
        image = (
            bases[i % BASES] + np.roll(noise[i % 4], rng.integers(SIDE), axis=0) + rng.integers(-30, 30, 3)
        )
        image = np.clip(image, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        Image.fromarray(image).save(folder / f"{i:06d}.jpg", quality=85)
    return count


def fabricate(root: Path, train: int, test: int, workers: int) -> None:
    """root/train and root/test, `train` and `test` JPEGs in all, split evenly over the classes."""
    tasks = []
    for split, total in (("train", train), ("test", test)):
        for label in range(CLASSES):
            count = total // CLASSES + (label < total % CLASSES)
            for first in range(0, count, 500):
                tasks.append((str(root / split / f"class{label}"), label, first, min(500, count - first)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = sum(pool.map(_fabricate, tasks))
    assert done == train + test


def _count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*/*.jpg")) if folder.is_dir() else 0


class Sampler:
    """Peak RSS of a process, and of it with its children, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.1):
        import psutil

        self.process, self.every = psutil.Process(pid), every
        self.peak = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                own = self.process.memory_info().rss
                tree = own
                for child in self.process.children(recursive=True):
                    try:
                        tree += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak, self.peak_tree = max(self.peak, own), max(self.peak_tree, tree)
            time.sleep(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()


def run_step(photos: Path, data: Path, size: int, threads: int, val_size) -> dict:
    spec = {"name": "rss-bench", "kind": "imagefolder", "root": str(photos), "image_size": size}
    if val_size is not None:
        spec["val_size"] = val_size
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec), str(data), str(threads)], env=env, stdout=output
        )
        sampler = Sampler(child.pid)
        _, status, usage = os.wait4(child.pid, 0)  # its rusage: the child's and its workers' peak
        wall = time.perf_counter() - start
        sampler.stop()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"the data step failed (exit {child.returncode})")
        output.seek(0)
        result = json.loads(output.read().strip().splitlines()[-1])
    result.update(
        wall=wall, sampled=sampler.peak, sampled_tree=sampler.peak_tree, maxrss_kb=usage.ru_maxrss, spec=spec
    )
    return result


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16000, help="training JPEGs (default 16000)")
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--size", type=int, default=224, help="the data step's image_size (default 224)")
    parser.add_argument("--threads", type=int, default=2, help="the data step's decoding processes")
    parser.add_argument("--val-size", type=float, default=None, help="of train/ (default: the kind's, 0.1)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the folder goes")
    parser.add_argument("--keep", type=Path, help="keep photos/ and data/ in this folder (and reuse photos)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="labbook-data-rss-", dir=args.dir))
    photos, data = work / "photos", work / "data"
    needed = (args.images + args.test_images) * (2.1 * args.size**2 * 3 + 15_000)
    free = shutil.disk_usage(work if work.exists() else args.dir).free
    if free < needed:
        raise SystemExit(f"{work}: {free / 1e9:.1f} GB free, about {needed / 1e9:.1f} GB needed")
    try:
        if _count(photos / "train") != args.images or _count(photos / "test") != args.test_images:
            shutil.rmtree(photos, ignore_errors=True)
            start = time.perf_counter()
            fabricate(photos, args.images, args.test_images, os.cpu_count() or 1)
            jpeg_mb = sum(p.stat().st_size for p in photos.rglob("*.jpg")) / 1e6
            print(
                f"fabricated {args.images} + {args.test_images} JPEGs ({jpeg_mb:.0f} MB) in "
                f"{time.perf_counter() - start:.0f} s under {photos}"
            )
        shutil.rmtree(data, ignore_errors=True)
        val_size = int(args.val_size) if args.val_size and args.val_size >= 1 else args.val_size
        result = run_step(photos, data, args.size, args.threads, val_size)
        files = {p.name: p.stat().st_size for p in data.glob("*.npy")}
        train = result["counts"]["train"]
        decoded = args.images + args.test_images
        print(
            f"train split: {sum(train.values())} images of {args.size}×{args.size}×3, "
            f"train_images.npy {files['train_images.npy'] / 1e9:.2f} GB on disk "
            f"(every split: {sum(files.values()) / 1e9:.2f} GB)"
        )
        print(
            f"data step: {result['seconds']:.1f} s, {decoded / result['seconds']:.0f} images/s "
            f"({decoded} files, threads={args.threads}; {result['wall']:.1f} s with the child's start)"
        )
        print(
            f"peak RSS of the step's process: {result['vmhwm_kb'] / 1024:.0f} MB (VmHWM); sampled "
            f"{result['sampled'] / 2**20:.0f} MB, {result['sampled_tree'] / 2**20:.0f} MB with its "
            f"decoding workers; ru_maxrss of it and its workers {result['maxrss_kb'] / 1024:.0f} MB"
        )
        if args.keep:
            print(f"kept: {photos} (the photos), {data} (the data step's folder)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
