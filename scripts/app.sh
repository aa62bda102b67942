#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and opens the workbench on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python main.py "$@"
