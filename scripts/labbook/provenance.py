"""What produced a result: code version, interpreter, packages, device. Never secrets.

No environment variables, tokens, user names or home-directory paths are recorded.
"""

import hashlib
import json
import platform
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
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def collect(step: str, packages=(), with_torch: bool = False, **facts) -> dict:
    record = {
        "step": step,
        "labbook": __version__,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": package_versions(packages),
        **facts,
    }
    if with_torch:
        record["torch"] = torch_environment()
    return record


def write(path, record: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    json.dump(collect("cli", ["numpy"]), sys.stdout, indent=2)
