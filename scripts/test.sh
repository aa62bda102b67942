#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
# Convert the embedded GGUF once per machine, not once per test session.
export ELDER_CACHE_DIR=${ELDER_CACHE_DIR:-$HOME/.cache/elder_workbench}
exec .venv/bin/python -m pytest "$@"
