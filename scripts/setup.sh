#!/usr/bin/env bash
# Set up .venv with everything the notebooks and the tests need. Safe to run again (it reuses .venv).
# torch is installed first and pinned, so that no resolver pulls a CUDA build of several GB.
#   bash scripts/setup.sh                 # package, notebooks, JupyterLab, test tools (versions float)
#   bash scripts/setup.sh e2e             # ... plus Playwright for the browser tests
#   bash scripts/setup.sh e2e --pinned    # ... at the exact versions of constraints.txt (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="dev,lab,grading"
pins=()
for arg in "$@"; do
  case "$arg" in
    e2e) extras="$extras,e2e" ;;
    --pinned) pins=(-c constraints.txt) ;;
    *) echo "setup.sh: unknown argument $arg (use e2e and/or --pinned)" >&2; exit 2 ;;
  esac
done
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check ${pins[@]+"${pins[@]}"} -e ".[${extras}]"
# Build the compiled CPU kernels now (about a minute, once; cached by torch), not in the first
# notebook or test that needs them; without a compiler the package uses its pure-PyTorch paths.
.venv/bin/python -c "import torch, sparsevd_lab; from sparsevd_lab import kernels; print('sparsevd_lab', sparsevd_lab.__version__, '| torch', torch.__version__, '| compiled kernels:', 'yes' if kernels.kernels_enabled() else 'no (pure-PyTorch paths)')"
