"""Launch ELDER Workbench: `python main.py` (see `python main.py --help`; `--smoke` for CI)."""

import sys

from app.main import run

if __name__ == "__main__":
    sys.exit(run())
