"""The predict step: classify new images with a trained run's portable model (export.py).

Images are decoded exactly as the data step decodes an ImageFolder (imagefolder.decode_all: same
decoder, same image size, same resize policy, read from model.json) and go through the
normalization and resize that training used (inside model.pt2). Files that cannot be read are
skipped and listed. Writes predictions.csv (file, top-k classes and probabilities) and an HTML
page showing each image with its top predictions.

Which images (plan/images.py) and which runs to choose from (the plan) are known while the job
graph is built; this module runs in the step.
"""

import base64
import csv
import html
import io
import json
import statistics
import sys
from pathlib import Path

from . import provenance
from .plan import files, sources

PAGE_LIMIT = 1000  # images shown on the HTML page; predictions.csv always has every one


# ---------------------------------------------------------------- which run
def choose_run(candidates: list[dict], run: str = "best") -> dict:
    """The run (and seed) to predict with, and why; chosen on validation accuracy, never on test
    (that would bias the test accuracy it is reported with upward).

    candidates: [{"run", "seed", "dir"}] whose dir holds metrics.json and the portable model.
    run "best": the run with the highest mean validation accuracy over its seeds (the first in
    config order on a tie); then that run's seed with the highest validation accuracy. A named
    run: its best seed by validation accuracy.
    """
    runs = {}
    for entry in candidates:
        metrics = json.loads((Path(entry["dir"]) / files.RUN["metrics"]).read_text())
        runs.setdefault(entry["run"], []).append((metrics["val_acc"], metrics["test_acc"], entry))
    if not runs:
        raise ValueError("predict: no trained runs to choose from")
    if run != "best" and run not in runs:
        raise ValueError(f"predict: run {run!r} is not among the trained runs {sorted(runs)}")
    means = {name: statistics.fmean(val for val, _, _ in seeds) for name, seeds in runs.items()}
    chosen_run = max(means, key=means.get) if run == "best" else run
    best_val, test, chosen = max(runs[chosen_run], key=lambda seed: seed[0])  # first seed on a tie
    reason = (
        f"best mean validation accuracy ({means[chosen_run]:.4f}) of {len(means)} run(s)"
        if run == "best"
        else "named in the config"
    )
    return {
        "run": chosen_run,
        "seed": chosen["seed"],
        "dir": chosen["dir"],
        "asked": run,
        "reason": f"{reason}; seed {chosen['seed']} has its best validation accuracy ({best_val:.4f}, "
        f"test accuracy {test:.4f})",
        "mean_val_acc": means,
        "mean_test_acc": {name: statistics.fmean(t for _, t, _ in seeds) for name, seeds in runs.items()},
        "seeds_val_acc": {name: {e["seed"]: val for val, _, e in seeds} for name, seeds in runs.items()},
    }


# ---------------------------------------------------------------- predicting
def predict(model_dir, paths, batch_size=256, device="auto", threads=1, top_k=5):
    """Decode, classify, rank. Returns a dict: files (the readable ones, in order), images (their
    uint8 decoded inputs), probabilities (N×classes float32), top (N×k class indices), skipped
    ([{"path", "reason"}]), info (model.json), device."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from . import export, imagefolder, train

    device = train.choose_device(device)
    model, info = export.load_portable(model_dir, device)
    images, results = imagefolder.decode_all(list(paths), info["image_size"], info["resize"], threads)
    readable, skipped = [], []
    for path, (_, reason) in zip(paths, results, strict=True):
        # shown and stored: a name that is not UTF-8 as \xNN, the home folder as ~
        name = provenance.scrub(sources.printable(path))
        if reason is None:
            readable.append(name)
        else:
            skipped.append({"path": name, "reason": reason})
    if not readable:
        listing = "\n".join(f"  {s['path']}: {s['reason']}" for s in skipped[:20])
        raise ValueError(f"predict: none of the {len(skipped)} file(s) could be read:\n{listing}")
    probabilities = []
    bar = tqdm(total=len(images), desc="predict", unit="img", file=sys.__stderr__)  # the step's log
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
            probabilities.append(model(batch.contiguous()).float().softmax(1).cpu().numpy())
            bar.update(len(batch))
    bar.close()
    classes = len(info["classes"])
    probabilities = np.concatenate(probabilities) if probabilities else np.empty((0, classes), np.float32)
    k = min(top_k, classes)
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return {
        "files": readable,
        "images": images,
        "probabilities": probabilities,
        "top": top,
        "skipped": skipped,
        "info": info,
        "device": str(device),
    }


# ---------------------------------------------------------------- writing
def write_csv(path, result) -> None:
    """One row per readable image: file, then class_1, probability_1, … class_k, probability_k."""
    classes = result["info"]["classes"]
    k = result["top"].shape[1]
    header = ["file"] + [name for i in range(1, k + 1) for name in (f"class_{i}", f"probability_{i}")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for file, top, probs in zip(result["files"], result["top"], result["probabilities"], strict=True):
            writer.writerow([file] + [v for c in top for v in (classes[c], f"{probs[c]:.6f}")])


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _png_data_uri(image) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cards_html(result, limit=PAGE_LIMIT) -> str:
    """Each image (inlined, as the model saw it) with its top predictions; names escaped."""
    classes = result["info"]["classes"]
    cards = []
    for file, image, top, probs in zip(
        result["files"][:limit],
        result["images"][:limit],
        result["top"][:limit],
        result["probabilities"][:limit],
        strict=True,
    ):
        rows = "".join(f"<tr><td>{html.escape(classes[c])}</td><td>{probs[c]:.1%}</td></tr>" for c in top)
        cards.append(
            f'<figure><img src="{_png_data_uri(image)}" alt="{html.escape(file)}">'
            f"<figcaption>{html.escape(Path(file).name)}</figcaption><table>{rows}</table></figure>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def choice_html(choice: dict) -> str:
    """Which run was used and why, with every candidate run's mean validation accuracy (which
    chooses) and test accuracy."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{val:.4f}</td><td>{choice['mean_test_acc'][name]:.4f}</td>"
        f"<td>{'← used' if name == choice['run'] else ''}</td></tr>"
        for name, val in choice["mean_val_acc"].items()
    )
    return (
        f"<p>Run <b>{html.escape(choice['run'])}</b>, seed {choice['seed']}: {html.escape(choice['reason'])}.</p>"
        "<table class='runs'><tr><th>run</th><th>mean validation accuracy (chooses)</th>"
        f"<th>mean test accuracy</th><th></th></tr>{rows}</table>"
    )


def skipped_html(result) -> str:
    items = "".join(
        f"<li><code>{html.escape(s['path'])}</code>: {html.escape(s['reason'])}</li>"
        for s in result["skipped"]
    )
    return f"<h2>{len(result['skipped'])} file(s) skipped: unreadable</h2><ul>{items}</ul>"


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 160px; }
figure img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
figcaption { font-size: 0.8em; overflow-wrap: anywhere; }
figure table { font-size: 0.8em; border-collapse: collapse; width: 100%; }
.runs td, .runs th { padding: 0.2em 1em; text-align: left; }
figure td:last-child { text-align: right; }
"""


def write_html(path, result, choice: dict) -> None:
    """A self-contained page: the run used and why, every image with its top predictions, and
    the files that could not be read."""
    info = result["info"]
    shown = min(len(result["files"]), PAGE_LIMIT)
    more = f" (the first {shown}; predictions.csv has all)" if shown < len(result["files"]) else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Predictions</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Predictions of run {html.escape(choice["run"])}, seed {choice["seed"]}</h1>
{choice_html(choice)}
<p>Model {html.escape(info["model"])}, images decoded at
{info["image_size"]}×{info["image_size"]} ({html.escape(info["resize"])}), on {html.escape(result["device"])}.</p>
<h2>{len(result["files"])} image(s){more}</h2>
{cards_html(result)}
{skipped_html(result)}
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


def standalone_demo(count=12) -> tuple[list[dict], list[str]]:
    """What the notebook predicts when opened on its own: (one trained demo run as the only
    candidate, a temporary folder of `count` demo test images as PNG files plus one broken file)."""
    import tempfile

    from PIL import Image

    from . import arrays, demo, train

    data_dir = demo.standalone_dir()
    run_dir = tempfile.mkdtemp(prefix="labbook-run-")
    train.train(train.TrainOptions(epochs=1, device="cpu"), data_dir, run_dir, log=lambda _: None)
    images_dir = Path(tempfile.mkdtemp(prefix="labbook-images-"))
    test_images, _ = arrays.load_split(data_dir, "test")
    for i, image in enumerate(test_images[:count]):
        Image.fromarray(image).save(images_dir / f"test-{i:02d}.png")
    (images_dir / "broken.png").write_bytes(b"this is not a PNG")
    return [{"run": "standalone", "seed": 0, "dir": run_dir}], [str(images_dir)]
