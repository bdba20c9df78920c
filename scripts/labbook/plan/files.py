"""The files each step writes: their one definition. The rules' `output:` entries are built from
these (`outputs(step, folder)`), and the library reads and writes the same names, so a file is
renamed here and nowhere else.

    results/data/<dataset key>/         DATA        (prepare_data)
    results/<experiment>/runs/<run>/seed<N>/
                                        RUN         (train; CHECKPOINT and TENSORBOARD beside)
                                        analysis/   ANALYSIS, figures/<FIGURES>.png (analyze)
    results/<experiment>/               REPORT      (report)
"""

from pathlib import Path

PROVENANCE = "provenance.json"  # every step's record of what produced its outputs

SPLITS = ("train", "val", "test")
# Each split is two uncompressed .npy files, which a step memory-maps and reads only in part:
# images (uint8 N×H×W×3) and labels (int64 N).
DATA = {
    "manifest": "manifest.json",  # written last: a manifest means the arrays are complete
    "train_images": "train_images.npy",
    "train_labels": "train_labels.npy",
    # validation: every choice (best epoch, best run, sweep winner) is made on it
    "val_images": "val_images.npy",
    "val_labels": "val_labels.npy",
    # evaluated once per run, at the end: every claim is made on it
    "test_images": "test_images.npy",
    "test_labels": "test_labels.npy",
}


def split_files(split: str) -> tuple[str, str]:
    """The file names of a split's images and labels."""
    if split not in SPLITS:
        raise ValueError(f"no split {split!r}; the splits are {', '.join(SPLITS)}")
    return DATA[f"{split}_images"], DATA[f"{split}_labels"]


RUN = {
    "model": "model.pt",  # the state_dict
    "program": "model.pt2",  # the portable model (torch.export, preprocessing inside)
    "program_info": "model.json",  # what a receiver of model.pt2 needs to know
    "metrics": "metrics.json",
    "predictions": "predictions.npz",  # test logits and labels
    "provenance": PROVENANCE,
}
CHECKPOINT = "checkpoint.pt"  # while training; kept after it with keep_checkpoint: true
TENSORBOARD = "tensorboard"

ANALYSIS_FOLDER = "analysis"
FIGURES_FOLDER = "figures"
# The analysis step's figures: file stem → what it shows (Snakemake report labels, alt texts).
FIGURES = {
    "confusion_matrix": "confusion matrix",
    "roc": "ROC curves",
    "reliability": "reliability diagram",
    "mistakes": "most confident mistakes",
}
ANALYSIS = {
    "evaluation": "evaluation.json",
    "provenance": PROVENANCE,
    **{name: f"{FIGURES_FOLDER}/{name}.png" for name in FIGURES},
}

REPORT = {
    "notebook": "report.ipynb",
    "html": "report.html",
    "provenance": "report.provenance.json",
    "book_entry": "book.json",
}
INDEX = "index.html"  # the lab book, in results/

PREDICT = {
    "predictions": "predictions.csv",
    "page": "predictions.html",
    "summary": "summary.json",
    "provenance": PROVENANCE,
}

STEPS = {"prepare_data": DATA, "train": RUN, "analyze": ANALYSIS, "report": REPORT, "predict": PREDICT}


def outputs(step: str, folder: str) -> dict:
    """{output name: path} of a step writing into folder (a path pattern such as
    results/x/runs/{run}/seed{seed}): what its rule declares as `output:`."""
    return {name: f"{folder}/{file}" for name, file in STEPS[step].items()}


def paths(step: str, folder) -> dict:
    """The same as outputs() for a real folder, as pathlib paths (library and tests)."""
    return {name: Path(folder) / file for name, file in STEPS[step].items()}
