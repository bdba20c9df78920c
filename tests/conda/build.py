"""Builds a real conda and a local stand-in for conda-forge, offline, for tests/test_conda.py.

    python tests/conda/build.py            # prints the cache folder; builds it first if needed

What it makes, under ~/.cache/labbook-conda/<hash of envs/*.yaml, this folder, constraints.txt>/:
- conda/: a venv holding conda 24.7.1 (the copy conda-lock vendors, renamed back to `conda`), its
  `bin/conda`, and the activation scripts Snakemake sources for every conda job (`bin/activate`,
  `etc/profile.d/conda.sh`), with a condarc that maps the channel `conda-forge` to the folder below.
- channels/conda-forge/: the PyPI wheels of exactly the env files' pins and of their dependencies
  (the others at constraints.txt's versions), repackaged as linux-64 conda packages, and the
  repodata py-rattler's index writes. Python itself is the machine's interpreter (it must be the
  pinned version), wrapped as a venv-style `python` package; `pytorch` is PyPI's own torch build,
  CUDA libraries and all (torchvision's PyPI wheel links against them).

It is not conda-forge: the packages are PyPI's builds under conda's names, and the solve runs over
this channel only. What it proves is conda's own path: env creation from the env files,
activation inside each job, `--conda-prefix`, `--conda-create-envs-only`.
Other hashes' folders are removed when a new one is built, so the cache holds one build.
"""

import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
CACHE_ROOT = Path(os.environ.get("LABBOOK_CONDA_CACHE", Path.home() / ".cache" / "labbook-conda"))
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
# conda-forge names where PyPI's differ (the env files use conda's).
PYPI_TO_CONDA = {"torch": "pytorch", "matplotlib": "matplotlib-base", "nbconvert": "nbconvert-core"}
# PyPI's own torch build (`===`: not a +cpu wheel a local wheel folder may offer): torchvision's
# PyPI wheel links against its CUDA libraries, so only that pair loads together. Gigabytes, once.
EXACT_PYPI_BUILD = {"torch"}
# What the exactly pinned torch pins itself: constraints.txt's versions (the venv's torch) don't apply.
PINNED_BY_TORCH = ("nvidia-", "triton")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cache_key() -> str:
    digest = hashlib.sha256(f"{sys.version} {getattr(sys, '_base_executable', sys.executable)}".encode())
    for path in [*ENV_FILES, *sorted(HERE.iterdir()), REPO / "constraints.txt"]:
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def env_pins() -> dict:
    """{conda name: version}, the union of every env file's pins (the env files agree)."""
    pins = {}
    for env_file in ENV_FILES:
        for line in env_file.read_text().splitlines():
            found = re.match(r"\s+- ([a-z0-9_.-]+)=([\w.]+)", line)
            if found:
                pins[found.group(1)] = found.group(2)
    return pins


def run(*command, **kwargs):
    print("+", " ".join(map(str, command)), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)


# ------------------------------------------------------------------ the conda base
def build_conda(base: Path, downloads: Path):
    """conda 24.7.1 in a venv of its own: the vendored copy from conda-lock's wheel."""
    lines = [line.split("#")[0].strip() for line in (HERE / "base.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    conda_lock = next(r for r in requirements if r.startswith("conda-lock=="))
    run(sys.executable, "-m", "venv", base)
    pip = [base / "bin" / "python", "-m", "pip", "install", "-q"]
    run(*pip, *[r for r in requirements if r != conda_lock])
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", downloads, conda_lock)
    wheel = next(downloads.glob("conda_lock-*.whl"))
    site = Path(
        subprocess.check_output(
            [base / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    prefix = "conda_lock/_vendor/conda/"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            target = site / "conda" / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            data = archive.read(name)
            if name.endswith(".py"):  # its imports name the vendored location
                data = re.sub(rb"conda_lock\.(_vendor|vendor)\.conda\b", b"conda", data)
            target.write_bytes(data)
    python = base / "bin" / "python"
    # The guard matters: conda detects CUDA in a child process, which re-imports __main__.
    write_script(
        base / "bin" / "conda",
        f"#!{python}\nimport sys\n\nif __name__ == '__main__':\n"
        "    from conda.cli.main import main\n\n    sys.exit(main())\n",
    )
    # What `source <conda>/bin/activate <env>` (Snakemake, for every job) and `conda activate`
    # need; the vendored copy ships neither. This replaces the venv's own bin/activate.
    conda_sh = (
        f'export CONDA_EXE="{base}/bin/conda"\nexport CONDA_PYTHON_EXE="{python}"\n'
        'conda() {\n  case "$1" in\n'
        '    activate|deactivate) eval "$("$CONDA_EXE" shell.posix "$@")" ;;\n'
        '    *) "$CONDA_EXE" "$@" ;;\n  esac\n}\n'
    )
    (base / "etc" / "profile.d").mkdir(parents=True, exist_ok=True)
    (base / "etc" / "profile.d" / "conda.sh").write_text(conda_sh)
    write_script(base / "bin" / "activate", f'. "{base}/etc/profile.d/conda.sh"\nconda activate "$@"\n')


def write_condarc(base: Path, channels: Path):
    (base / ".condarc").write_text(
        json.dumps(
            {
                "solver": "classic",  # conda-libmamba-solver is not on PyPI
                "channel_priority": "strict",
                "custom_channels": {"conda-forge": channels.as_uri()},
                "offline": True,
                "pkgs_dirs": [str(base / "pkgs")],
                "envs_dirs": [str(base / "envs")],
                "auto_update_conda": False,
                "notify_outdated_conda": False,
                "report_errors": False,
            },
            indent=1,
        )
    )


def write_script(path: Path, text: str):
    path.write_text(text)
    path.chmod(0o755)


# ------------------------------------------------------------------ the wheels
def download_wheels(pins: dict, wheels: Path):
    """The env files' pins (PyPI names) with everything they need, as wheels; dependencies the
    env files don't pin take constraints.txt's versions."""
    pypi_pins = {}
    for name, version in pins.items():
        if name == "python":
            continue
        pypi = {conda: pypi for pypi, conda in PYPI_TO_CONDA.items()}.get(name, name)
        pypi_pins[canonical(pypi)] = f"{pypi}{'===' if pypi in EXACT_PYPI_BUILD else '=='}{version}"
    constraints = wheels.parent / "constraints.txt"
    kept = []
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name = canonical(line.split("==")[0].strip())
        if "==" in line and name not in pypi_pins and not name.startswith(PINNED_BY_TORCH):
            kept.append(line)
    constraints.write_text("\n".join(kept) + "\n")
    run(
        sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", wheels,
        "-c", constraints, *pypi_pins.values(), "pip",
    )  # fmt: skip


# ------------------------------------------------------------------ wheels -> conda packages
def wheel_metadata(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        message = Parser().parsestr(archive.read(name).decode())
    return {
        "name": canonical(message["Name"]),
        "version": message["Version"],
        "requires": message.get_all("Requires-Dist") or [],
        "dist_info": name.split("/")[0],
    }


def dependencies(meta: dict, extras: set, by_name: dict, seen=None) -> dict:
    """{name: specifier} of a wheel's Requires-Dist for these extras, markers evaluated here;
    a dependency's own requested extras are expanded into their packages (conda has no extras)."""
    from packaging.requirements import Requirement

    seen = seen if seen is not None else set()
    found = {}
    for line in meta["requires"]:
        requirement = Requirement(line)
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
        ):
            continue
        name = canonical(requirement.name)
        found[name] = str(requirement.specifier)
        key = (name, frozenset(requirement.extras))
        if requirement.extras and name in by_name and key not in seen:
            seen.add(key)
            found.update(dependencies(by_name[name], set(requirement.extras), by_name, seen))
    return found


def conda_spec(name: str, specifier: str, by_name: dict) -> str:
    conda_name = PYPI_TO_CONDA.get(name, name)
    if name not in by_name:
        raise SystemExit(f"{name} is required but was not downloaded")
    # Local versions (+cpu) are dropped from package versions, so from specifiers too.
    specifier = re.sub(r"\+[\w.]+", "", specifier).replace("===", "==")
    return f"{conda_name} {specifier}" if specifier else conda_name


def repackage(wheel: Path, meta: dict, depends: list, subdir: Path):
    """One wheel as a linux-64 conda package (.conda), installed the way pip would lay it out."""
    name = PYPI_TO_CONDA.get(meta["name"], meta["name"])
    version = re.sub(r"\+.*", "", meta["version"])
    write_package(subdir, name, version, depends, wheel_files(wheel, meta))


def wheel_files(wheel: Path, meta: dict):
    """(path in the env, bytes, mode) for each file, one at a time (torch's are gigabytes)."""
    site = f"lib/python{PY}/site-packages"
    data_dir = meta["dist_info"].replace(".dist-info", ".data")
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or name == f"{meta['dist_info']}/RECORD":  # RECORD: pip's hashes, pip's layout
                continue
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            if not name.startswith(data_dir + "/"):
                yield f"{site}/{name}", archive.read(info), mode
                continue
            kind, _, rest = name[len(data_dir) + 1 :].partition("/")
            if kind in ("purelib", "platlib"):
                yield f"{site}/{rest}", archive.read(info), mode
            elif kind == "scripts":
                yield (
                    f"bin/{rest}",
                    re.sub(rb"^#!python\w*", b"#!/usr/bin/env python", archive.read(info)),
                    0o755,
                )
            elif kind == "data":
                yield rest, archive.read(info), mode
        entry_points = f"{meta['dist_info']}/entry_points.txt"
        if entry_points in archive.namelist():
            yield from console_scripts(archive.read(entry_points).decode())
    yield f"{site}/{meta['dist_info']}/INSTALLER", b"conda\n", 0o644


def console_scripts(text: str) -> list:
    scripts, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            script, target = (part.strip() for part in line.split("=", 1))
            module, _, function = target.partition(":")
            body = (
                f"#!/usr/bin/env python\nimport sys\nfrom {module} import {function.split('.')[0]}\n\n"
                f"if __name__ == '__main__':\n    sys.exit({function}())\n"
            )
            scripts.append((f"bin/{script}", body.encode(), 0o755))
    return scripts


def python_package(subdir: Path, version: str):
    """`python` as the machine's interpreter: a copy of its binary and a pyvenv.cfg, so that an
    env is a venv of the host Python with the env's site-packages (none of the host's)."""
    executable = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    if platform.python_version() != version:
        raise SystemExit(
            f"the env files pin python={version}, but this machine's Python is "
            f"{platform.python_version()} ({executable}): the local channel wraps the machine's Python"
        )
    files = [
        (f"bin/python{PY}", executable.read_bytes(), 0o755),
        (
            "pyvenv.cfg",
            f"home = {executable.parent}\ninclude-system-site-packages = false\nversion = {version}\n".encode(),
            0o644,
        ),
    ]
    links = {"bin/python": f"python{PY}", "bin/python3": f"python{PY}"}
    write_package(subdir, "python", version, [], files, symlinks=links)


def write_package(subdir: Path, name: str, version: str, depends: list, files, symlinks=None):
    """A .conda file: a zip of metadata.json and two zstd tarballs, info/ and the files."""
    import tempfile

    import zstandard

    build = f"py{PY.replace('.', '')}_0"
    stem = f"{name}-{version}-{build}"
    paths = []
    with tempfile.TemporaryFile(dir=subdir) as pkg:
        with tarfile.open(fileobj=pkg, mode="w") as tar:
            for path, data, mode in files:
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
                sha256 = hashlib.sha256(data).hexdigest()
                paths.append(
                    {"_path": path, "path_type": "hardlink", "sha256": sha256, "size_in_bytes": len(data)}
                )
            for path, target in sorted((symlinks or {}).items()):
                info = tarfile.TarInfo(path)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
                paths.append({"_path": path, "path_type": "softlink"})
        paths.sort(key=lambda p: p["_path"])
        index = {
            "name": name,
            "version": version,
            "build": build,
            "build_number": 0,
            "depends": sorted(depends),
            "subdir": "linux-64",
            "platform": "linux",
            "arch": "x86_64",
            "license": "see the package's own metadata",
            "timestamp": 0,
        }
        info_files = {
            "info/index.json": json.dumps(index, indent=1).encode(),
            "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode(),
            "info/files": "".join(f"{p['_path']}\n" for p in paths).encode(),
        }
        info = io.BytesIO()
        with tarfile.open(fileobj=info, mode="w") as tar:
            for path, data in info_files.items():
                entry = tarfile.TarInfo(path)
                entry.size, entry.mode = len(data), 0o644
                tar.addfile(entry, io.BytesIO(data))
        compressor = zstandard.ZstdCompressor(level=3, threads=-1)
        with zipfile.ZipFile(subdir / f"{stem}.conda", "w", zipfile.ZIP_STORED) as package:
            package.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
            package.writestr(f"info-{stem}.tar.zst", compressor.compress(info.getvalue()))
            pkg.seek(0)
            with package.open(f"pkg-{stem}.tar.zst", "w", force_zip64=True) as out:
                compressor.copy_stream(pkg, out)


def build_channel(pins: dict, wheels: Path, channel: Path):
    """Runs in the conda base's Python (it has zstandard and py-rattler)."""
    import asyncio

    from rattler.index import index_fs

    subdir = channel / "linux-64"
    subdir.mkdir(parents=True)
    (channel / "noarch").mkdir()
    metas = {wheel: wheel_metadata(wheel) for wheel in sorted(wheels.glob("*.whl"))}
    by_name = {meta["name"]: meta for meta in metas.values()}
    for wheel, meta in metas.items():
        depends = [f"python {PY}.*"] + [
            conda_spec(name, spec, by_name) for name, spec in dependencies(meta, set(), by_name).items()
        ]
        repackage(wheel, meta, depends, subdir)
    python_package(subdir, pins["python"])
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False))


# ------------------------------------------------------------------ main
def main() -> Path:
    key = cache_key()
    folder = CACHE_ROOT / key
    if (folder / "complete").exists():
        return folder
    started = time.time()
    if CACHE_ROOT.exists():  # one build kept: an old one is gigabytes
        for old in CACHE_ROOT.iterdir():
            shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True)
    pins = env_pins()
    base, downloads = folder / "conda", folder / "downloads"
    downloads.mkdir()
    timings = {}
    build_conda(base, downloads)
    timings["conda"] = round(time.time() - started, 1)
    channels = folder / "channels"
    write_condarc(base, channels)
    download_wheels(pins, downloads / "wheels")
    timings["wheels"] = round(time.time() - started - sum(timings.values()), 1)
    run(base / "bin" / "python", __file__, "--channel", downloads / "wheels", channels / "conda-forge")
    timings["channel"] = round(time.time() - started - sum(timings.values()), 1)
    shutil.rmtree(downloads)  # the packages hold the same files
    (folder / "complete").write_text(json.dumps({"seconds": timings, "pins": pins}, indent=1))
    print(f"built {folder} in {sum(timings.values()):.0f} s: {timings}", file=sys.stderr)
    return folder


if __name__ == "__main__":
    if sys.argv[1:2] == ["--channel"]:
        build_channel(env_pins(), Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(main())
