#!/usr/bin/env bash
# Set everything up, then run the whole test suite: unit tests, the notebooks under nbval in fast mode,
# the assignment build check and the end-to-end browser tests in JupyterLab.
set -euo pipefail
cd "$(dirname "$0")/.."
# The compiled kernels are required here: a build that fails stops setup and fails the kernel tests,
# instead of skipping them (sparsevd_lab.settings: SPARSEVD_KERNELS=1).
export SPARSEVD_KERNELS=1
bash scripts/setup.sh e2e --pinned  # the exact versions of constraints.txt: a repeatable green
# System packages: Debian's Chromium for the browser tests, the real Fashion-MNIST for the data tests.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! command -v chromium >/dev/null || [ ! -d /usr/share/datasets/fashion-mnist ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dataset-fashion-mnist >/dev/null
  fi
fi
export SPARSEVD_FAST=1 PYTHONHASHSEED=0
set +e
.venv/bin/python -m pytest -p no:cacheprovider tests notebooks/*.ipynb --nbval-lax "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
