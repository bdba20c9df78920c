"""The tiny workflow through profiles/slurm on a real single-node Slurm started here, its resnet18
run on two GPUs; and, without a cluster, the sbatch arguments the pinned plugin builds for that.

tests/slurm/cluster.sh installs Debian's Slurm, munge, slurmdbd and MariaDB where missing and
starts them with two fake GPUs; with slurmdbd up, the plugin's default status command (sacct) is
the one used, as on most clusters. Needs root and apt (CI has both); skipped otherwise, saying so.
The workflow runs once (a module fixture); each test reads what it left.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from builders import REPO, copy_workflow, tiny_config
from labbook.plan import datasets, limits

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
# Jobs the tiny config makes: one data preparation, per (run, seed) a training and an analysis.
EXPECTED_JOBS = {"prepare_data": 1, "train": 2, "analyze": 2, "report": 1, "index": 1}
# The resnet18 run states its own wall time and memory in the config; the others are estimated.
RESNET18_LIMITS = {"runtime": 25, "mem_mb": 2500}
# ...and trains on two GPUs (the cluster's two fake ones), cifarnet on one.
GPUS = {"cifarnet": 1, "resnet18": 2}
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"


def cluster(*args, log: Path):
    """Runs cluster.sh with its output in a file (its daemons must not hold our pipes open)."""
    with log.open("a") as out:
        result = subprocess.run(["bash", CLUSTER, *args], stdout=out, stderr=subprocess.STDOUT, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"cluster.sh {' '.join(args)} failed:\n{log.read_text()[-4000:]}")


# ---------------------------------------------------------------- what the plugin submits
class FakeJob:
    """What the plugin's argument builders read of a job: its threads and resources (by .get and
    as attributes, as Snakemake's own job offers them)."""

    def __init__(self, threads, **resources):
        self.threads = threads
        self.resources = SimpleNamespace(**resources)
        self.resources.get = resources.get


def submitted(resources: dict, threads: int) -> tuple[str, str]:
    """(the sbatch call, the job step's srun prefix) that snakemake-executor-plugin-slurm and its
    jobstep plugin build for a job with these resources: the same functions, called as they call
    them (__init__.py's run_job: get_submit_command + set_gres_string; the jobstep's run_job)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting, get_gpu_setting, get_node_setting

    job = FakeJob(threads, **resources)
    params = {
        "run_uuid": "RUN",
        "slurm_logfile": "LOG",
        "comment_str": "rule_train",
        "account": "-A 'lab'",
        "partition": "-p 'gpu'",
        "workdir": "/work",
    }
    sbatch = get_submit_command(job, params) + set_gres_string(job)
    srun = " ".join(
        ["srun -n1 --cpu-bind=q", get_cpu_setting(job, True), get_gpu_setting(job), get_node_setting(job)]
    )
    return sbatch, srun


def train_resources(gpus: int, **extra) -> dict:
    """A training job's resources on Slurm: the rule's own (gpu follows the run's `gpus`), then
    the profile's default-resources and set-resources for train on top, as Snakemake applies them."""
    profile = yaml.safe_load(PROFILE.read_text())
    return {
        "gpu": gpus,
        "runtime": 15,
        "mem_mb": 7000,
        **(profile.get("default-resources") or {}),
        **extra,
        **profile["set-resources"]["train"],
    }


def test_the_profile_submits_a_two_gpu_run_as_one_task_seeing_both():
    assert "gpu" not in yaml.safe_load(PROFILE.read_text())["set-resources"]["train"], (
        "a gpu: in the profile would override every run's own count"
    )
    sbatch, srun = submitted(train_resources(2), threads=8)
    assert sbatch == (
        "sbatch --parsable --job-name RUN --output LOG --export=ALL --comment rule_train -A 'lab' -p 'gpu'"
        " -t 15 --mem 7000 --cpus-per-gpu=4 -D /work --gpus=2"
    )
    assert "--ntasks" not in sbatch and "--cpus-per-task" not in sbatch  # one task (sbatch's default)
    assert srun == "srun -n1 --cpu-bind=q --cpus-per-gpu=4 --gpus=2 --nodes=1"
    # a one-GPU run: the same, with one
    assert submitted(train_resources(1), threads=4)[0].endswith("--cpus-per-gpu=4 -D /work --gpus=1")


def test_the_profiles_tasks_per_gpu_0_keeps_a_tasks_resource_from_splitting_the_gpus():
    """The trap: for a GPU job the plugin turns `tasks` into --ntasks-per-gpu (one task per GPU,
    each running the whole command); the profile's tasks_per_gpu: 0 stops that."""
    sbatch, _ = submitted(train_resources(2, tasks=1), threads=8)
    assert "--ntasks" not in sbatch
    without_guard = {k: v for k, v in train_resources(2, tasks=1).items() if k != "tasks_per_gpu"}
    assert "--ntasks-per-gpu=1" in submitted(without_guard, threads=8)[0]


# ---------------------------------------------------------------- on a real Slurm
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


def sacct_steps(job_id: str) -> dict:
    """{step id: (NTasks, AllocTRES)} of one job: its allocation, `batch` and the job steps."""
    listing = subprocess.run(
        ["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,NTasks,AllocTRES"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {step: (tasks, tres) for step, tasks, tres in (line.split("|") for line in listing.splitlines())}


def rule_of(job: dict) -> str:
    return re.match(r"rule_(.+?)(?:_wildcards_|$)", job["Comment"]).group(1)


def run_of(job: dict, config: dict) -> str | None:
    return next(
        (r for r in config["runs"] if rule_of(job) == "train" and f"_{r}_" in job["Comment"] + "_"), None
    )


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, module_folder):
    """The tiny workflow through the profile, once: (workdir, config, snakemake's result, sacct)."""
    work = copy_workflow(module_folder / "wf")
    config = tiny_config()
    config["runs"]["resnet18"].update(RESNET18_LIMITS)
    config["runs"]["resnet18"]["gpus"] = GPUS["resnet18"]
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    profile = ci_profile(work)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LABBOOK_GPUS")}
    # jobs inherit this environment (--export=ALL): `python` in the rules must be this venv's
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started = time.time()
    # Snakemake ignores SIGTERM while Slurm jobs run: `timeout -k` ends it for sure. --verbose
    # prints each sbatch call the plugin makes.
    result = subprocess.run(
        [
            "timeout",
            "-k",
            "15",
            "600",
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            str(profile),
            "--verbose",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    print(f"slurm: the tiny workflow took {time.time() - started:.0f} s")
    assert result.returncode == 0, (
        f"snakemake --profile slurm failed:\n{result.stdout[-5000:]}\n{result.stderr[-8000:]}"
    )
    return work, config, result, sacct_jobs()


def train_log(work: Path, run: str) -> str:
    return (work / "results" / "tiny" / "logs" / "train" / run / "seed0.log").read_text()


@pytest.mark.slow
def test_tiny_workflow_runs_through_the_slurm_profile(slurm_run):
    work, config, result, jobs = slurm_run
    wanted = expected_limits(config)
    assert wanted["train", "resnet18"] == (25, 2500) and wanted["train", "cifarnet"] != (25, 2500)
    assert (work / "results" / "tiny" / "report.html").is_file()
    assert "No wall time information given" not in result.stdout + result.stderr

    # Every job went through sbatch: slurmdbd recorded each, named by this run's id and commented
    # rule_<rule>[_wildcards_...] by the plugin, and each COMPLETED.
    assert Counter(rule_of(job) for job in jobs) == EXPECTED_JOBS, jobs
    assert len({job["JobName"] for job in jobs}) == 1, "jobs from more than one Snakemake run"
    for job in jobs:
        assert job["State"] == "COMPLETED", job
        # submitted with the rule's --time and --mem: estimated, or the run's own in the config
        rule, run = rule_of(job), run_of(job, config)
        assert (minutes(job["Timelimit"]), megabytes(job["ReqMem"])) == wanted[rule, run], job
        # the training jobs, and only they, were given (fake) GPUs: as many as their run's `gpus`
        gpus = re.search(r"gres/gpu=(\d+)", job["AllocTRES"])
        assert (int(gpus.group(1)) if gpus else 0) == GPUS.get(run, 0), job

    # ...and the one-GPU training saw Slurm's device, which labbook.gpus kept
    assert re.search(
        r"labbook.gpus: CUDA_VISIBLE_DEVICES='[01]' already set, kept\n", train_log(work, "cifarnet")
    )


@pytest.mark.slow
def test_a_two_gpu_run_gets_both_gpus_in_one_task(slurm_run):
    work, config, result, jobs = slurm_run
    # what the plugin submitted: both GPUs, CPUs per GPU, no task count (one task)
    calls = [line for line in (result.stdout + result.stderr).splitlines() if "sbatch call:" in line]
    resnet18 = [
        call.split("--wrap")[0]
        for call in calls
        if re.search(r"--comment \S*rule_train_wildcards_\S*resnet18", call)
    ]
    assert len(resnet18) == 1, calls
    (submit,) = resnet18
    print(f"slurm: the 2-GPU training job was submitted as: {submit.split('sbatch call: ')[-1]}")
    assert " --gpus=2" in submit and " --cpus-per-gpu=1 " in submit, submit
    assert "--ntasks" not in submit and "--cpus-per-task" not in submit, submit
    # what Slurm made of it: one job step, one task in it, holding both GPUs
    (job,) = [job for job in jobs if run_of(job, config) == "resnet18"]
    steps = sacct_steps(job["JobID"])
    assert "gres/gpu=2" in steps[job["JobID"]][1], steps
    command_steps = {
        step: value for step, value in steps.items() if re.fullmatch(rf"{job['JobID']}\.\d+", step)
    }
    assert list(command_steps) == [f"{job['JobID']}.0"], steps
    tasks, tres = command_steps[f"{job['JobID']}.0"]
    assert tasks == "1" and "gres/gpu=2" in tres, steps
    # ...and the command ran once, seeing both devices, which labbook.gpus kept
    log = train_log(work, "resnet18")
    assert log.count("labbook.gpus: ") == 1, log[:2000]
    assert "labbook.gpus: CUDA_VISIBLE_DEVICES='0,1' already set, kept\n" in log


@pytest.mark.slow
def test_a_two_gpu_run_trains_in_two_processes(slurm_run):
    """Training's side of `gpus: 2`: torchrun's two workers, one per device (gloo here: the GPUs
    are fake), recorded in metrics.json and one log line each."""
    work, *_ = slurm_run
    metrics = json.loads(
        (work / "results" / "tiny" / "runs" / "resnet18" / "seed0" / "metrics.json").read_text()
    )
    assert metrics.get("processes") == 2, {k: v for k, v in metrics.items() if k != "history"}
    log = train_log(work, "resnet18")
    for rank in (0, 1):
        assert re.search(rf"^.*worker {rank}/2 on \S+", log, re.MULTILINE), log[-3000:]
    one_gpu = json.loads(
        (work / "results" / "tiny" / "runs" / "cifarnet" / "seed0" / "metrics.json").read_text()
    )
    assert one_gpu.get("processes") == 1
