#!/usr/bin/env bash
# Set up .venv with everything the notebooks and the tests need. Safe to run again (it reuses .venv).
#   bash scripts/setup.sh                 # package, notebooks, JupyterLab, test tools (versions float)
#   bash scripts/setup.sh e2e             # ... plus Playwright for the browser tests
#   bash scripts/setup.sh e2e --pinned    # ... at the exact versions of constraints.txt (what CI runs)
#   bash scripts/setup.sh --print-torch-index   # only say where torch would come from, install nothing
#
# torch comes first, on its own: on a machine without an NVIDIA GPU (no working `nvidia-smi`) the CPU
# build from PyTorch's CPU wheel index ($SPARSEVD_TORCH_CPU_INDEX, default below), since on Linux the
# default index (PyPI) has the CUDA build, several GB of NVIDIA libraries a CPU never uses. With a GPU,
# or where that index cannot be reached within $SPARSEVD_TORCH_INDEX_TIMEOUT seconds, or on macOS (whose
# PyPI wheels are CPU builds), pip's default index. The last line printed says which build it got.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="torch==2.13.0"  # the version CI tests (constraints.txt)
CPU_INDEX="${SPARSEVD_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
PROBE_TIMEOUT="${SPARSEVD_TORCH_INDEX_TIMEOUT:-5}"

# True (0) when `nvidia-smi -L` runs and lists a GPU ("GPU 0: ..."): a driver that fails does not count.
has_nvidia_gpu() {
  local gpus
  command -v nvidia-smi >/dev/null 2>&1 && gpus="$(nvidia-smi -L 2>/dev/null)" && [[ "$gpus" == *"GPU "* ]]
}

# True (0) when the index answers for torch within PROBE_TIMEOUT seconds ($1: the python to probe with).
index_reachable() {
  "$1" - "$CPU_INDEX" "$PROBE_TIMEOUT" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=float(sys.argv[2])).close()
PY
}

# Prints the index to install torch from ("default": pip's own); says why on stderr.
torch_index() {
  if has_nvidia_gpu; then
    echo "setup.sh: NVIDIA GPU found (nvidia-smi): torch's default build, with CUDA" >&2
    echo default
  elif [[ "$OSTYPE" == darwin* ]]; then
    echo "setup.sh: macOS: torch from pip's default index (its macOS wheels are CPU builds)" >&2
    echo default
  elif index_reachable "$1"; then
    echo "setup.sh: no NVIDIA GPU: torch's CPU build from $CPU_INDEX" >&2
    echo "$CPU_INDEX"
  else
    echo "setup.sh: no NVIDIA GPU, but $CPU_INDEX did not answer within ${PROBE_TIMEOUT} s:" \
         "torch from pip's default index, whichever build it has (on Linux PyPI's is the CUDA one)" >&2
    echo default
  fi
}

extras="dev,lab,grading"
pins=()
for arg in "$@"; do
  case "$arg" in
    e2e) extras="$extras,e2e" ;;
    --pinned) pins=(-c constraints.txt) ;;
    --print-torch-index) torch_index "${PYTHON:-python3}"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg (use e2e, --pinned and/or --print-torch-index)" >&2; exit 2 ;;
  esac
done
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
index="$(torch_index .venv/bin/python)"
if [ "$index" != default ] && ! "${pip[@]}" --index-url "$index" "$TORCH_SPEC"; then
  echo "setup.sh: installing torch from $index failed: trying pip's default index" >&2
  index=default
fi
if [ "$index" = default ]; then
  "${pip[@]}" "$TORCH_SPEC"
fi
"${pip[@]}" ${pins[@]+"${pins[@]}"} -e ".[${extras}]"
# Build the compiled CPU kernels now (it prints one line first; 1 to 3 minutes, once per torch, Python
# and CPU), not in the first notebook or test that needs them; without a compiler the package uses
# its pure-PyTorch paths.
.venv/bin/python -c "import torch, sparsevd_lab; from sparsevd_lab import kernels; print('sparsevd_lab', sparsevd_lab.__version__, '| torch', torch.__version__, '(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU build)', '| compiled kernels:', 'yes' if kernels.kernels_enabled() else 'no (pure-PyTorch paths)')"
