"""Writing the user's files safely: refuse a destination that holds something else, write atomically.

Every command that writes a file the user names (`--out`) goes through here, so one rule holds
everywhere: a file is replaced only if it is the same kind of file this command writes, never an
input being read, a vote store, or a folder; and it is replaced whole (temporary file + rename),
so an error or a kill leaves the old file as it was.
"""

import contextlib
import json
import os
from pathlib import Path

from .errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _jsonl_rows_have(path: Path, columns: set) -> bool:
    """True when every line of `path` is a JSON object holding `columns` (an empty file qualifies)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict) or not columns <= row.keys():
                        return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def same_file(a, b) -> bool:
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_jsonl_out(out, *, columns, inputs=(), flag: str = "--out") -> Path:
    """The JSONL file a command may write: new, or a JSONL of the same kind (rows with `columns`).

    Refuses, before anything is computed or written: a folder, any of `inputs` (the files being
    read), an SQLite file (a vote store), or any other existing file."""
    out = Path(out).expanduser()
    keep = f"it is left as it is; choose another {flag} path"
    if any(same_file(out, source) for source in inputs if source):
        raise UserError(f"{flag} {out} is the file being read; {keep}")
    if out.is_dir():
        raise UserError(f"{flag} {out} is a folder; give a file path such as {out / 'out.jsonl'}")
    if out.exists():
        if is_sqlite(out):
            raise UserError(f"{flag} {out} is an SQLite database (a vote store?); {keep}")
        if not _jsonl_rows_have(out, set(columns)):
            raise UserError(f"{flag} {out} exists and is not a file this command writes "
                            f"(JSONL rows with {', '.join(sorted(columns))}); {keep}")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"{flag} {out}: {out.parent} is a file, not a folder")
    return out


def check_folder_out(out, flag: str = "--out") -> Path:
    """A folder a command writes its report files into: refused if it is a file; created later."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder; give a folder path")
    return out


def read_jsonl(path, *, broken=None, encoding_errors: str = "strict") -> list[tuple[int, object]]:
    """(line number, value) of each non-blank line of a JSONL file.

    A line that is not JSON is skipped (the last one may be cut off by a run still writing, or killed),
    unless `broken(number, error)` is given, which may raise a UserError naming the line.
    """
    rows = []
    text = Path(path).read_text(encoding="utf-8", errors=encoding_errors)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError as e:
            if broken is not None:
                broken(number, e)
    return rows


def write_atomically(path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename: `path` is old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path, rows) -> None:
    write_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
