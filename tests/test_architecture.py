"""Architecture rules, checked by scanning imports with ast:

1. `elder_engine` never imports Qt (PySide6, shiboken, matplotlib's Qt backends).
2. `app` uses only the engine's public API: the package `elder_engine` itself and
   `elder_engine.history`, never a private engine module (`elder_engine.editing.editor`, ...).
3. Every name `app` imports from `elder_engine` is exported by `elder_engine/__init__.py`.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "elder_engine"
APP = ROOT / "app"
QT_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy")
QT_BACKENDS = ("matplotlib.backends.backend_qt", "matplotlib.backends.qt_compat")
APP_MAY_IMPORT = ("elder_engine", "elder_engine.history")


def _imports(path: Path):
    """(module, names, line) for every import in a file; relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: str):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield module, tuple(a.name for a in node.names), node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value, (), node.lineno


def _files(folder: Path):
    files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    assert files, f"no Python files under {folder}"
    return files


def test_engine_never_imports_qt():
    bad = []
    for path in _files(ENGINE):
        for module, names, line in _imports(path):
            full = [module] + [f"{module}.{n}" for n in names]
            if any(m == q or m.startswith(q + ".") for m in full for q in QT_MODULES) or \
                    any(m.startswith(b) for m in full for b in QT_BACKENDS):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "elder_engine must not import Qt:\n" + "\n".join(bad)


def test_app_uses_only_the_public_engine_api():
    bad = []
    for path in _files(APP):
        for module, names, line in _imports(path):
            if module == "elder_engine" or module.startswith("elder_engine."):
                if module not in APP_MAY_IMPORT:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports private module {module}")
                elif module == "elder_engine":
                    private = [n for n in names if n.startswith("_")]
                    if private:
                        bad.append(f"{path.relative_to(ROOT)}:{line} imports private names {private}")
    assert not bad, "app may import only elder_engine and elder_engine.history:\n" + "\n".join(bad)


def test_app_imports_only_exported_engine_names():
    import elder_engine
    exported = set(elder_engine.__all__)
    missing = []
    for path in _files(APP):
        for module, names, line in _imports(path):
            if module == "elder_engine":
                missing += [f"{path.relative_to(ROOT)}:{line} {n}" for n in names if n not in exported]
    assert not missing, "names not exported by elder_engine/__init__.py:\n" + "\n".join(missing)


@pytest.mark.parametrize("source, expected", [
    ("from elder_engine.editing.editor import ElderEditor", "elder_engine.editing.editor"),
    ("from .elder import get_profile", "elder_engine.elder"),
])
def test_the_scanner_sees_private_and_relative_imports(source, expected):
    assert expected in [m for m, _n, _l in _imports_in(source, "elder_engine")]


def test_import_linter_contracts_hold(capsys, monkeypatch):
    """The layer contracts in pyproject.toml ([tool.importlinter]), checked by import-linter on
    the real import graph: no cycles; the engine never imports app or Qt; app.session no Qt;
    the method never imports editing, evaluation, history or the CLI."""
    import tomllib

    from importlinter.cli import lint_imports

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Contracts: {len(contracts)} kept, 0 broken." in out, out


def test_import_and_help_do_not_load_torch():
    """`import elder_engine` and the CLI's --help stay light: torch, transformers, peft and
    matplotlib load only when a command that needs them runs."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "peft", "matplotlib")
    script = (
        "import sys, contextlib, io\n"
        "import elder_engine\n"
        "from elder_engine.cli.main import main\n"
        "for argv in (['--help'], ['eval', '--help'], ['history', '--help'], ['bench', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (argv, e.code)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
