"""What produced a result: code version, interpreter, packages, device. Never secrets.

No environment variables, tokens, user names or home-directory paths are recorded.
"""

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import __version__

REPO = Path(__file__).resolve().parents[2]


def git_state(repo=REPO) -> dict:
    def git(*args):
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if commit else None}


def package_versions(names) -> dict:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def torch_environment() -> dict:
    """torch, CUDA, cuDNN and GPU facts; only for steps whose env has torch."""
    import torch

    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [],
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
            )
            info["driver"] = smi.stdout.split("\n")[0].strip() or None
        except OSError:
            info["driver"] = None
    return info


def config_hash(config) -> str:
    """sha256 of the config's content, independent of key order and YAML formatting."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def file_hash(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def collect(step: str, packages=(), with_torch: bool = False, config=None, manifest=None, **facts) -> dict:
    """What ran this step. config: the values the step was given, kept with their hash (as JSON,
    which YAML readers read too: the step envs need no YAML library);
    manifest: the data's manifest.json, kept as its hash (the data's identity). facts: anything
    else worth keeping, e.g. run and seed."""
    record = {
        "step": step,
        "labbook": __version__,
        "git": git_state(),
        "python": platform.python_version(),
        "python_prefix": sys.prefix,  # the env it ran in: a conda env under .snakemake/conda/, or a venv
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": package_versions(packages),
        **facts,
    }
    if config is not None:
        record["config_sha256"] = config_hash(config)
        record["config"] = config
    if manifest is not None and Path(manifest).exists():
        record["manifest_sha256"] = file_hash(manifest)
    if with_torch:
        record["torch"] = torch_environment()
    return record


def scrub(value, home=None):
    """The value with the home directory written as ~ in every string: paths under it would
    name the user and their machine layout."""
    home = home or os.path.expanduser("~")
    if isinstance(value, dict):
        return {key: scrub(item, home) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, home) for item in value]
    if isinstance(value, str) and home not in ("", "/") and home in value:
        # the home folder itself, not /home/al inside /home/alice
        return re.sub(re.escape(home.rstrip("/")) + r"(?=$|[/\s\"'`,;:)\]}<>|])", "~", value)
    return value


def write(path, record: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(scrub(record), indent=2, default=str))


def read(path) -> dict:
    """A provenance record, or {} where the step wrote none (e.g. an older run)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


if __name__ == "__main__":
    json.dump(collect("cli", ["numpy"]), sys.stdout, indent=2)
