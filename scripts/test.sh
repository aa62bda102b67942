#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite. Extra arguments go to pytest.
# The desktop-app tests run in a pytest process of their own: the engine's report code selects
# matplotlib's Agg backend when its modules are imported during collection, and the app needs
# QtAgg, so one process cannot host both.
# Both groups always run (a failing engine group does not hide the app group); one summary line
# per group at the end; the exit status is non-zero when either group failed. pytest's exit 5
# ("no tests collected", e.g. extra arguments that select tests of one group only) counts as
# "no tests selected" for that group, not as a failure, unless both groups selected nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup: FAILED (scripts/setup.sh)" >&2; exit 1; }
export QT_QPA_PLATFORM=offscreen
# Convert the embedded GGUF once per machine, not once per test session.
export ELDER_CACHE_DIR=${ELDER_CACHE_DIR:-$HOME/.cache/elder_workbench}

.venv/bin/python -m pytest --ignore-glob='tests/test_app*' "$@"
engine=$?
.venv/bin/python -m pytest tests/test_app*.py "$@"
app=$?

summary() {  # name, pytest exit status
  case "$2" in
    0) echo "$1: passed" ;;
    5) echo "$1: no tests selected" ;;
    *) echo "$1: FAILED (exit $2)" ;;
  esac
}
echo
summary engine "$engine"
summary app "$app"

if [ "$engine" -eq 5 ] && [ "$app" -eq 5 ]; then
  exit 5
fi
for status in "$engine" "$app"; do
  if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
    exit 1
  fi
done
exit 0
