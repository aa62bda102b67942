"""Watch-list text: what a person pastes, and the text and CSV files the list is imported from
and exported to.

Pasted text and `.txt` files: one prompt per line, blank lines skipped. An expected answer
may follow the prompt after a tab (what a spreadsheet column pastes as) or, when the line has
no tab, after the last " -> " ("The capital of France is -> Paris"). Export writes the tab
form, and a tab after a prompt that itself contains " -> ", so a file reads back as written.

`.csv` files: a `prompt` column and an optional `expected` column (a header row
`prompt,expected` is optional), standard quoting, UTF-8 (a byte-order mark is fine).

Every reader checks the whole input before returning anything, so a bad line means nothing
is added; its message names the line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from ..errors import DataFormatError, EditRequestError

ARROW = " -> "
MAX_PROMPT_CHARS = 4000
MAX_ITEMS = 10000
MAX_FILE_BYTES = 8 << 20
Item = tuple[str, str]      # (prompt, expected; "" = none)


def check_item(prompt: str, expected: str = "", where: str = "") -> Item:
    """A stripped (prompt, expected) pair; EditRequestError for an empty or oversized prompt."""
    prompt = (prompt or "").strip()
    expected = (expected or "").strip()
    at = f"{where}: " if where else ""
    if not prompt:
        what = f"has an expected answer ({expected!r}) but no prompt" if expected else "has an empty prompt"
        raise EditRequestError(f"{at}the watch list entry {what}; type the prompt to watch.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise EditRequestError(f"{at}the prompt is {len(prompt)} characters long; a watched prompt may have at "
                               f"most {MAX_PROMPT_CHARS}.")
    return prompt, expected


def split_line(line: str) -> tuple[str, str]:
    if "\t" in line:
        prompt, _, expected = line.partition("\t")
        return prompt, expected
    if ARROW in line:
        prompt, _, expected = line.rpartition(ARROW)
        return prompt, expected
    return line, ""


def parse_text(text: str, source: str = "line") -> list[Item]:
    """Items from pasted text or a text file (see the module docstring)."""
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        items.append(check_item(*split_line(line), where=f"{source} {n}"))
    _check_count(items)
    return items


def parse_csv(text: str, source: str = "line") -> list[Item]:
    items = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            n = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if not items and n == 1 and row[0].strip().lower() == "prompt":
                if len(row) > 2 or (len(row) == 2 and row[1].strip().lower() != "expected"):
                    raise DataFormatError(f"{source} 1: the header must be 'prompt' or 'prompt,expected', "
                                          f"not {','.join(row)!r}.")
                continue
            if len(row) > 2:
                raise DataFormatError(f"{source} {n} has {len(row)} fields; a watch-list CSV has a prompt and an "
                                      "optional expected answer (quote a prompt that contains a comma).")
            items.append(check_item(row[0], row[1] if len(row) > 1 else "", where=f"{source} {n}"))
    except csv.Error as error:
        raise DataFormatError(f"{source} {reader.line_num}: malformed CSV ({error}).") from None
    _check_count(items)
    return items


def _check_count(items: list) -> None:
    if len(items) > MAX_ITEMS:
        raise DataFormatError(f"{len(items)} prompts is more than a watch list holds ({MAX_ITEMS}).")


def is_csv(path) -> bool:
    return Path(path).suffix.lower() == ".csv"


def read_file(path) -> list[Item]:
    """Items of a .csv or text file; DataFormatError (what and where) when it cannot be used."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataFormatError(f"{path} is a folder; choose a .txt or .csv file.")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DataFormatError(f"{path} is {size >> 20} MB; a watch-list file may have at most "
                                  f"{MAX_FILE_BYTES >> 20} MB.")
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file.") from None
    except OSError as error:
        raise DataFormatError(f"{path} cannot be read ({error.strerror or error}).") from None
    if b"\x00" in data:
        raise DataFormatError(f"{path} is not a text file (it contains NUL bytes); choose a .txt or .csv file.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8.") from None
    name = f"{p.name} line"
    items = parse_csv(text, name) if is_csv(p) else parse_text(text, name)
    if not items:
        raise DataFormatError(f"{path} has no prompts in it.")
    return items


def format_text(items: Iterable[Item]) -> str:
    lines = []
    for n, (prompt, expected) in enumerate(items, 1):
        if "\t" in prompt or "\n" in prompt or "\r" in prompt or "\n" in expected or "\t" in expected:
            raise DataFormatError(f"prompt {n} contains a tab or a line break, which a text file cannot hold; "
                                  "export as .csv instead.")
        lines.append(f"{prompt}\t{expected}" if expected or ARROW in prompt else prompt)
    return "".join(line + "\n" for line in lines)


def format_csv(items: Iterable[Item]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prompt", "expected"])
    writer.writerows([prompt, expected] for prompt, expected in items)
    return out.getvalue()


def write_file(path, items: Iterable[Item]) -> Path:
    """Write items as CSV (a .csv name) or text; the file appears whole or not at all."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataFormatError(f"{path} is a folder; give a file name (.txt or .csv).")
    text = format_csv(items) if is_csv(p) else format_text(items)
    tmp = p.with_name(p.name + ".part")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(p)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise DataFormatError(f"Cannot write {path} ({error.strerror or error}).") from None
    return p
