#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite. Extra arguments go to pytest.
# The desktop-app tests run in a pytest process of their own: the engine's report code selects
# matplotlib's Agg backend when its modules are imported during collection, and the app needs
# QtAgg, so one process cannot host both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
# Convert the embedded GGUF once per machine, not once per test session.
export ELDER_CACHE_DIR=${ELDER_CACHE_DIR:-$HOME/.cache/elder_workbench}
.venv/bin/python -m pytest --ignore-glob='tests/test_app*' "$@"
exec .venv/bin/python -m pytest tests/test_app*.py "$@"
