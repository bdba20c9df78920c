# `snakemake predict`: classify new images (config `predict:`) with a trained run's portable
# model. Which run is "best" is known only after training, so the step receives every candidate
# run's metrics and portable model, chooses itself and records the choice in summary.json.
import sys

sys.path.insert(0, str(LIBRARY.parent))
from labbook.predict import images_fingerprint

PREDICT_DIR = "results/predict"


def predict_options():
    """The config's predict: block (schema defaults filled in); an error naming what is missing."""
    if "predict" not in config:
        raise ValueError(
            "`snakemake predict` needs a predict: block in the config, e.g.\n"
            "predict:\n  images: path/to/new/images"
        )
    return config["predict"]


def predict_candidates():
    """[{run, seed, dir}] the step may choose from: every training job, or the named run's."""
    run = predict_options()["run"]
    if run != "best" and run not in config["runs"]:
        raise ValueError(
            f"predict: run {run!r} is not a run of this config; runs: {sorted(config['runs'])}"
        )
    return [
        {"run": name, "seed": seed, "dir": run_dir(name, seed)}
        for name, seed in run_seeds()
        if run in ("best", name)
    ]


def predict_inputs(wildcards):
    """Each candidate's metrics.json and portable model (model.pt2 + model.json)."""
    return [
        f"{candidate['dir']}/{name}"
        for candidate in predict_candidates()
        for name in ("metrics.json", "model.pt2", "model.json")
    ]


def predict_notebook_params(wildcards):
    options = predict_options()
    images = options["images"]
    return as_json(
        {
            "images": [images] if isinstance(images, str) else images,
            "candidates": predict_candidates(),
            "run": options["run"],
            "top_k": options["top_k"],
            "batch_size": options["batch_size"],
            "device": options["device"],
            "out_dir": PREDICT_DIR,
        }
    )


rule predict:
    input:
        notebook="notebooks/predict.ipynb",
        runs=predict_inputs,
    output:
        predictions=f"{PREDICT_DIR}/predictions.csv",
        page=f"{PREDICT_DIR}/predictions.html",
        summary=f"{PREDICT_DIR}/summary.json",
        provenance=f"{PREDICT_DIR}/provenance.json",
    log:
        notebook="logs/predict/predict.ipynb",
        stdout="logs/predict/predict.log",
    benchmark:
        "benchmarks/predict.tsv"
    conda:
        "../envs/train.yaml"
    threads: 4
    resources:
        gpu=1,
    params:
        notebook=predict_notebook_params,
        code=code_hash("predict", "export", "imagefolder", "sources", "train"),
        # The images' names and content: new, removed or edited images rerun the step.
        images=lambda wc: images_fingerprint(
            predict_options()["images"],
            digest_cache=".snakemake/labbook/source-md5.json",
        ),
    shell:
        on_own_gpu(notebook_command())
