"""The data step in the workflow, in a throwaway copy: it reruns when its source files change and
not when they are only touched or rewritten; a failing download is tried again; the shipped
configs plan every step."""

import os
import shutil
from pathlib import Path

import pytest
import yaml
from builders import REPO, copy_workflow, data_dir, image_folder, snakemake
from labbook.plan.kinds import cifar10 as cifar10_kind
from PIL import Image

PHOTOS = {"name": "photos", "kind": "imagefolder", "root": "photos", "image_size": 16}


def prep_would_run(workdir: Path) -> bool:
    """Whether a dry run of the data step's output plans the data step."""
    result = snakemake(workdir, "-n", str(data_dir(Path(), PHOTOS) / "manifest.json"))
    return "prepare_data" in result.stdout


@pytest.mark.slow
def test_changed_source_files_rerun_data_prep_identical_ones_do_not(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    image_folder(
        workdir / "photos",
        per_class=6,
        name="{i}.jpg",
        colour={"ants": (40, 90, 200), "bees": (190, 90, 50)},
        size=lambda slot: (48 + 4 * slot.i, 40),
    )
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["dataset"] = PHOTOS
    config["train"]["input_size"] = 32  # CIFARNet takes 32×32 only; these photos are stored smaller
    config.setdefault("analysis", {})["top_k"] = 1  # two classes (config.yaml keeps the defaults)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    manifest = data_dir(workdir, PHOTOS) / "manifest.json"
    snakemake(workdir, str(manifest.relative_to(workdir)))
    assert manifest.exists()
    assert not prep_would_run(workdir)

    image = workdir / "photos/train/ants/0.jpg"
    os.utime(image)  # touched, same bytes
    shutil.copy2(image, workdir / "copy.jpg")
    shutil.copy2(workdir / "copy.jpg", image)  # rewritten with identical bytes
    assert not prep_would_run(workdir)

    Image.new("RGB", (50, 40), (0, 255, 0)).save(image)  # new content
    assert prep_would_run(workdir)
    built = manifest.stat().st_mtime_ns
    snakemake(workdir, str(manifest.relative_to(workdir)))
    assert manifest.stat().st_mtime_ns != built
    assert not prep_would_run(workdir)

    (workdir / "photos/val/bees/5.jpg").unlink()  # a file removed
    assert prep_would_run(workdir)


@pytest.mark.slow
def test_a_failing_download_is_tried_again_by_snakemake(tmp_path, monkeypatch):
    """CIFAR-10 to download through a proxy that refuses every connection (here, on any
    machine): the data step runs 1 + DOWNLOAD_RETRIES times, each failing with its reason."""
    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((REPO / "configs" / "cifar10.yaml").read_text())
    config["dataset"]["root"] = str(tmp_path / "cifar10")
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = snakemake(work, "--until", "prepare_data", check=False, timeout=600)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("Error in rule prepare_data") == 1 + cifar10_kind.DOWNLOAD_RETRIES, output[-3000:]
    assert "could not download CIFAR-10" in output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10.yaml", "imagefolder.yaml"])
def test_shipped_config_plans_the_whole_workflow(tmp_path, name):
    workdir = copy_workflow(tmp_path / "workflow")
    # The plan wants an ImageFolder's root to be there before any job: a small one where the
    # config names it (CIFAR-10 is downloaded by its data step).
    image_folder(workdir / "data" / "hymenoptera_data", per_class=2)
    result = snakemake(workdir, "-n", "--configfile", str(REPO / "configs" / name))
    assert "prepare_data" in result.stdout and "report" in result.stdout
