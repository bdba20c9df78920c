"""Snakemake's own report (`snakemake --report`) of a finished tiny workflow whose title and a
run's hypothesis are planted markup: opened in a browser, nothing planted runs. And the report
rule of a 500-training-job experiment: every job's shell command stays far below Linux's 128 KiB
argument limit (the report's parameters travel in a file), and the report notebook builds from
500 job records through the rule's own command."""

import io
import json
import re
import subprocess
import sys
import zipfile

import browser
import numpy as np
import pytest
import yaml
from builders import (
    REPO,
    Elements,
    copy_workflow,
    scripts_on_pythonpath,
    snakemake,
    tiny_config,
    venv_environment,
)

pytestmark = pytest.mark.slow

TITLE = "</script><script>window.pwned=1</script>"
HYPOTHESIS = "<img src=x onerror=window.pwned=2>"
# What the page says of the flag planted markup would set: null unless something planted ran.
PROBE = "JSON.stringify(window.pwned === undefined ? null : window.pwned)"


def planted_config() -> dict:
    config = tiny_config(title=TITLE, train__epochs=1)
    config["runs"] = {"cifarnet": {**config["runs"]["cifarnet"], "hypothesis": HYPOTHESIS}}
    config["objective"]["hypothesis"] = HYPOTHESIS
    return config


@pytest.mark.skipif(not browser.available(), reason="needs Chromium")
def test_snakemakes_report_runs_no_planted_markup(tmp_path):
    control = tmp_path / "control.html"
    control.write_text("<html><body><h1>x</h1><script>window.pwned=3</script></body></html>")
    assert browser.inspect(control, tmp_path / "control.png", probe=PROBE)["probe"] == 3, (
        "the probe sees a script run"
    )

    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(planted_config(), sort_keys=False))
    snakemake(workdir)
    snakemake(workdir, "--report", "r.zip")
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(workdir / "r.zip") as archive:
        archive.extractall(unzipped)
    pages = sorted(unzipped.rglob("report.html"), key=lambda path: len(path.parts))
    assert len(pages) == 2, pages  # Snakemake's own page, and the lab report registered in it
    snakemakes, lab_report = pages

    facts = browser.inspect(snakemakes, tmp_path / "snakemake-report.png", probe=PROBE)
    assert facts["probe"] is None, f"planted markup ran in Snakemake's report: window.pwned={facts['probe']}"
    assert facts["height"] > 300, "the report's page was drawn"

    facts = browser.inspect(lab_report, tmp_path / "lab-report.png", probe=PROBE)
    assert facts["probe"] is None, f"planted markup ran in the lab report: window.pwned={facts['probe']}"
    assert facts["headings"][0] == TITLE, "the title is shown as the text it is"
    assert HYPOTHESIS in " ".join(Elements(lab_report.read_text()).text), "the hypothesis, as text"


# ---------------------------------------------------------------- a 500-training-job experiment
LRS = [round(0.0001 * (i + 1), 6) for i in range(250)]
SEEDS = [0, 1]
ARGUMENT_LIMIT = 128 * 1024  # Linux's MAX_ARG_STRLEN: one argument, and `sh -c` takes a command as one


def big_config() -> dict:
    return tiny_config(runs={"lr": {"seeds": SEEDS, "target_accuracy": 0.1, "sweep": {"lr": LRS}}})


def shell_commands(output: str) -> list[str]:
    """The shell commands `snakemake -n -p` prints: 'Shell command: ...' up to a blank line."""
    return [
        match.strip() for match in re.findall(r"^Shell command: (.*?)(?=\n\s*\n|\Z)", output, re.M | re.S)
    ]


def test_a_500_job_experiments_shell_commands_stay_short(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(big_config(), sort_keys=False))
    result = snakemake(workdir, "-n", "-p", check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    commands = shell_commands(result.stdout)
    jobs = len(LRS) * len(SEEDS)
    assert len(commands) >= 2 * jobs + 3, len(commands)  # prepare_data, train and analyze each, report, index
    longest = max(commands, key=len)
    assert len(longest.encode()) < ARGUMENT_LIMIT / 32, f"{len(longest.encode())} bytes: {longest[:300]}"
    (report,) = [c for c in commands if "notebooks/report.ipynb" in c]
    params = re.search(r"--params (\S+)", report).group(1)
    assert re.fullmatch(r"\.snakemake/labbook/params/[0-9a-f]+\.json", params), report
    values = json.loads((workdir / params).read_text())
    assert len(values["runs"]) == jobs and values["title"] == big_config()["title"]


def one_pixel_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def fabricate_jobs(root, data_dir) -> list[dict]:
    """Train and analyze outputs of 500 jobs (250 lr values × 2 seeds), made up: metrics.json,
    provenance, evaluation.json from made-up logits, and 1×1 figures. Returns the job records."""
    from labbook import arrays, metrics, provenance
    from labbook.plan import files
    from labbook.plan.record import JobRecord
    from report_demo import fake_metrics

    manifest = data_dir / files.DATA["manifest"]
    classes = arrays.read_manifest(data_dir)["classes"]
    _, labels = arrays.load_split(data_dir, "test")
    rng = np.random.default_rng(0)
    evaluations = [
        metrics.evaluate(3.0 * np.eye(len(classes))[labels] + rng.normal(0, noise, (len(labels), len(classes))),
                         labels, classes, top_k=3, calibration_bins=10, mistakes=8)
        for noise in (1.0, 2.0, 3.0)
    ]  # fmt: skip
    train_record = provenance.collect("train", ["numpy"], with_torch=True, config={"options": {"lr": 0.01}})
    analysis_record = provenance.collect("analyze", ["numpy"], manifest=manifest)
    figure = one_pixel_png()
    records = []
    for i, lr in enumerate(LRS):
        name = f"lr-lr{lr}"
        for seed in SEEDS:
            run_dir = root / "runs" / name / f"seed{seed}"
            job = JobRecord(name, seed, str(run_dir), str(run_dir / files.ANALYSIS_FOLDER), 0.1,
                            "Beats chance.", {"run": "lr", "values": {"lr": lr}})  # fmt: skip
            evaluation = {**evaluations[(i + seed) % 3], "run": name, "seed": seed}
            made = {
                **{key: path for key, path in job.train_files().items() if key in ("metrics", "provenance")},
                **{
                    key: path
                    for key, path in job.analysis_files().items()
                    if key in ("evaluation", "provenance")
                },
            }
            for path in made.values():
                path.parent.mkdir(parents=True, exist_ok=True)
            metrics_record = fake_metrics(name, seed, evaluation["accuracy"], classes)
            job.train_files()["metrics"].write_text(json.dumps(metrics_record))
            provenance.write(job.train_files()["provenance"], {**train_record, "run": name, "seed": seed})
            job.analysis_files()["evaluation"].write_text(json.dumps(evaluation))
            provenance.write(
                job.analysis_files()["provenance"], {**analysis_record, "run": name, "seed": seed}
            )
            for path in job.figures().values():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(figure)
            records.append(job.to_dict())
    return records


def test_the_report_builds_from_500_job_records_through_the_rules_command(tmp_path, demo_data):
    from labbook.plan import params

    out = tmp_path / "results" / "big"
    records = fabricate_jobs(out, demo_data)
    config = big_config()
    values = {
        "experiment": "big", "title": "A big sweep", "objective": config["objective"], "data_dir": str(demo_data),
        "runs": records, "config": config, "logs": [], "tensorboard_dir": str(out / "runs"),
        "provenance_path": str(out / "report.provenance.json"), "book_entry_path": str(out / "book.json"),
    }  # fmt: skip
    assert len(json.dumps(values)) > ARGUMENT_LIMIT, "more than one argument could hold"
    executed, page = out / "logs" / "report.ipynb", out / "report.html"
    # rules/report.smk's command: python -m labbook.runner NOTEBOOK EXECUTED --params FILE --html OUT
    command = [sys.executable, "-m", "labbook.runner", str(REPO / "notebooks" / "report.ipynb"), str(executed),
               "--params", params.write(values, folder=tmp_path / "params"), "--html", str(page)]  # fmt: skip
    assert len(" ".join(command).encode()) < 4096
    environment = {**venv_environment(), "PYTHONPATH": scripts_on_pythonpath()}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    text = page.read_text()
    assert re.search(r"<title>\s*A big sweep\s*</title>", text)
    for record in records[:: len(records) // 10]:
        assert f"{record['name']}, seed {record['seed']}" in text, record["name"]
    assert len(re.findall(r"lr-lr[0-9.e-]+, seed [01]", text)) >= len(records)
    entry = json.loads((out / "book.json").read_text())
    assert entry["jobs"] == len(records) and entry["runs"] == len(LRS)
