#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run every check:
# ruff, tsc --strict, vitest (happy-dom), and pytest (Python, plus real-browser tests in Debian's
# chromium driven by Playwright against JupyterLab and a bare host page).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

python3 -m venv .venv
# PyTorch's CPU build: PyPI's torch for Linux is the CUDA one, several GB of NVIDIA libraries (README).
.venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
npm ci --no-audit --no-fund
.venv/bin/pip install -q --upgrade -e ".[test]"
# What a fresh install got: the newest releases the version ranges allow, so CI tests what users get.
.venv/bin/python -c "import importlib.metadata as m; print('versions:', ', '.join(f'{p} {m.version(p)}' for p in ('torch', 'transformers', 'tokenizers', 'numpy', 'anywidget', 'ipywidgets', 'jupyterlab', 'notebook', 'playwright')))"

.venv/bin/ruff check .
npx tsc --noEmit
npx vitest run
.venv/bin/python -m pytest
