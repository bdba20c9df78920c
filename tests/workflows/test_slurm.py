"""The tiny workflow through profiles/slurm on a real single-node Slurm started here.

tests/slurm/cluster.sh installs Debian's Slurm, munge, slurmdbd and MariaDB where missing and
starts them with one fake GPU; with slurmdbd up, the plugin's default status command (sacct) is
the one used, as on most clusters. Needs root and apt (CI has both); skipped otherwise, saying so.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from builders import REPO, copy_workflow, tiny_config
from labbook.plan import datasets, limits

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
# Jobs the tiny config makes: one data preparation, per (run, seed) a training and an analysis.
EXPECTED_JOBS = {"prepare_data": 1, "train": 2, "analyze": 2, "report": 1, "index": 1}
# The vgg16 run states its own wall time and memory in the config; the others are estimated.
VGG16_LIMITS = {"runtime": 25, "mem_mb": 2500}

pytestmark = pytest.mark.slow


def cluster(*args, log: Path):
    """Runs cluster.sh with its output in a file (its daemons must not hold our pipes open)."""
    with log.open("a") as out:
        result = subprocess.run(["bash", CLUSTER, *args], stdout=out, stderr=subprocess.STDOUT, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"cluster.sh {' '.join(args)} failed:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the Slurm test installs and starts daemons: it needs root")
    if not shutil.which("apt-get"):
        pytest.skip("the Slurm test installs Debian's Slurm packages: it needs apt-get")
    state = Path(tempfile.mkdtemp(prefix="labbook-slurm-"))  # not under pytest's 0700 tmp: MariaDB reads it
    log = state / "cluster.log"
    started = time.time()
    cluster("install", log=log)
    installed = time.time()
    try:
        cluster("start", str(state), log=log)
        print(f"\nslurm: install {installed - started:.0f} s, daemons up {time.time() - installed:.0f} s")
        yield state
    finally:
        cluster("stop", str(state), log=log)
        shutil.rmtree(state, ignore_errors=True)


def ci_profile(workdir: Path) -> Path:
    """profiles/slurm as shipped, with what a user fills in (account, partition), and capped to
    this node: 2 CPUs, one GPU, little memory; status checks sooner, for a quicker test."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    # no runtime or mem_mb: what the rules declare is what gets submitted
    profile["default-resources"] = {"slurm_account": "root", "slurm_partition": "debug"}
    profile["set-resources"]["train"]["cpus_per_gpu"] = 1
    profile.update(
        {
            "max-threads": 2,
            "retries": 0,
            "latency-wait": 5,
            "slurm-init-seconds-before-status-checks": 5,
        }
    )
    path = workdir / "profiles" / "ci-slurm" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile))
    return path.parent


def sacct_jobs() -> list[dict]:
    """Every job slurmdbd recorded: id, name, comment (the plugin's rule_<rule>...), state, TRES,
    the time limit and the memory it asked for."""
    fields = ["JobID", "JobName", "Comment", "State", "AllocTRES", "Timelimit", "ReqMem"]
    listing = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1days", "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in listing.splitlines()]


def minutes(timelimit: str) -> int:
    """sacct's Timelimit ([days-]hours:minutes:seconds) in minutes."""
    days, _, clock = timelimit.rpartition("-")
    hours, mins, _ = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + mins


def megabytes(reqmem: str) -> int:
    """sacct's ReqMem (e.g. 5000M, 2G; older Slurm appends n or c) in MB."""
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?)[nc]?", reqmem).groups()
    return round(float(number) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[unit or "M"])


def expected_limits(config: dict) -> dict:
    """{(rule, run or None): (minutes, MB)} as labbook.limits estimates them for this config, the
    run's own runtime/mem_mb taking precedence."""
    spec = config["dataset"]
    size = datasets.size(spec)
    expected = {
        (step, None): limits.job(step, spec, size) for step in ("prepare_data", "analyze", "report", "index")
    }
    for run, entry in config["runs"].items():
        options = {**config["train"], **{k: v for k, v in entry.items() if k in config["train"]}}
        expected["train", run] = limits.train(options, spec, entry, size)
    return {key: (value["runtime"], value["mem_mb"]) for key, value in expected.items()}


def test_tiny_workflow_runs_through_the_slurm_profile(slurm_cluster, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = tiny_config()
    config["runs"]["vgg16"].update(VGG16_LIMITS)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    wanted = expected_limits(config)
    assert wanted["train", "vgg16"] == (25, 2500) and wanted["train", "cifarnet"] != (25, 2500)
    profile = ci_profile(work)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LABBOOK_GPUS")}
    # jobs inherit this environment (--export=ALL): `python` in the rules must be this venv's
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started = time.time()
    # Snakemake ignores SIGTERM while Slurm jobs run: `timeout -k` ends it for sure
    result = subprocess.run(
        ["timeout", "-k", "15", "600", sys.executable, "-m", "snakemake", "--profile", str(profile)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    print(f"slurm: the tiny workflow took {time.time() - started:.0f} s")
    assert result.returncode == 0, (
        f"snakemake --profile slurm failed:\n{result.stdout[-5000:]}\n{result.stderr[-8000:]}"
    )
    assert (work / "results" / "tiny" / "report.html").is_file()
    assert "No wall time information given" not in result.stdout + result.stderr

    # Every job went through sbatch: slurmdbd recorded each, named by this run's id and commented
    # rule_<rule>[_wildcards_...] by the plugin, and each COMPLETED.
    jobs = sacct_jobs()
    rules = Counter(re.match(r"rule_(.+?)(?:_wildcards_|$)", job["Comment"]).group(1) for job in jobs)
    assert rules == EXPECTED_JOBS, jobs
    assert len({job["JobName"] for job in jobs}) == 1, "jobs from more than one Snakemake run"
    for job in jobs:
        assert job["State"] == "COMPLETED", job
        # submitted with the rule's --time and --mem: estimated, or the run's own in the config
        rule = re.match(r"rule_(.+?)(?:_wildcards_|$)", job["Comment"]).group(1)
        run = next((r for r in config["runs"] if rule == "train" and f"_{r}_" in job["Comment"] + "_"), None)
        assert (minutes(job["Timelimit"]), megabytes(job["ReqMem"])) == wanted[rule, run], job
        # the training jobs, and only they, were given the (fake) GPU
        assert ("gres/gpu=1" in job["AllocTRES"]) == job["Comment"].startswith("rule_train"), job

    # ...and the training saw Slurm's device, which labbook.gpus kept
    for run in ("cifarnet", "vgg16"):
        log = (work / "results" / "tiny" / "logs" / "train" / run / "seed0.log").read_text()
        assert "labbook.gpus: CUDA_VISIBLE_DEVICES='0' already set, kept" in log
