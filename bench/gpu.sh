#!/usr/bin/env bash
# The GPU session's one command: install the workflow's wheels where they are missing (the GPU
# machine has torch but no snakemake/papermill/nbconvert, and no package index), then run
# bench/gpu.py with its JSON and full log in $OUT, the folder the device tool brings back.
#
# Before the session, here (.whl/ is git-ignored; wheels ~43 MB + data 19.6 MB, under the 64 MiB
# the working tree may take):
#   ../shared/tools/gpu-wheelhouse .whl snakemake==9.27.1 papermill nbconvert ipykernel
#   mkdir -p .whl/data && cp ../shared/data/cifar10-jpeg.tar.gz .whl/data/
# Then: run(command="bench/gpu.sh", carry=[".whl"], timeout_s=560). Arguments go on to
# bench/gpu.py (e.g. --budget-s 300, --skip vgg16 for a rerun of what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! "$py" -c "import snakemake, papermill, nbconvert, ipykernel" 2>/dev/null; then
  [ -d .whl ] || { echo "no .whl/ holding the workflow's wheels: see the top of $0" >&2; exit 2; }
  "$py" -m pip install -q --no-index --find-links .whl snakemake papermill nbconvert ipykernel
fi
out=${OUT:-/tmp}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
"$py" bench/gpu.py --out "$out/gpu.json" "$@" 2>&1 | tee "$out/gpu.log"
