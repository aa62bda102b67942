"""`adapter`: an edited engine as a folder in peft's layout, and probes on such a folder.

    python -m elder_engine adapter export --db FILE FOLDER      the history's current state
    python -m elder_engine adapter probe FOLDER --query TEXT [--target TEXT]

The folder holds adapter_config.json + adapter_model.safetensors (editing/export.py); `probe`
loads it on the base model given by --model, as `ElderEditor.from_pretrained` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_model_options, command, emit, open_editor, open_model


@command("adapter")
def run_adapter(args) -> int:
    """Export a history's engine in peft's layout, or probe an exported folder."""
    if args.action == "export":
        from ..errors import HistoryError
        from ..history import EditHistory

        if not Path(args.db).expanduser().is_file():
            raise HistoryError(f"There is no history at {args.db}; edit first (`edit --db ...`), then export.")
        history = EditHistory.open(args.db, open_editor(args))
        try:
            history.editor.save_pretrained(args.folder)
            print(f"exported the state after edit {history.head} to {args.folder}", file=sys.stderr)
            emit({"folder": str(args.folder), "head": history.head, "edits": len(history.editor.edits),
                  "profile": history.editor.config.profile})
        finally:
            history.close()
        return 0
    from ..editing.editor import ElderEditor
    from ..editing.export import read_adapter_config

    read_adapter_config(args.folder)  # a clear error before the model loads
    editor = ElderEditor.from_pretrained(open_model(args), args.folder)
    editor.validate(args.query, args.target)
    emit(editor.probe(args.query, args.target, max_new_tokens=args.max_new_tokens).to_dict())
    return 0


def _configure(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    export = sub.add_parser("export", help="write the history's current state as a peft-layout folder")
    export.add_argument("--db", required=True, help="history file (SQLite)")
    export.add_argument("folder", help="folder to write (created; its two files are replaced)")
    add_model_options(export)
    probe = sub.add_parser("probe", help="load an exported folder on the base model and probe a query")
    probe.add_argument("folder")
    probe.add_argument("--query", required=True)
    probe.add_argument("--target", default=None, help="also score this answer")
    probe.add_argument("--max-new-tokens", type=int, default=24, help="greedy tokens generated per output")
    add_model_options(probe)


run_adapter.configure = _configure
