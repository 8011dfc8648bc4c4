"""Writing the user's files safely: refuse a destination that holds something else, write atomically.

Every command that writes a file the user names (`--out`) goes through here, so one rule holds
everywhere: a file is replaced only if it is the same kind of file this command writes, never an
input being read, a vote store, or a folder; and it is replaced whole (temporary file + rename),
so an error or a kill leaves the old file as it was.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tinyalign.core.errors import UserError

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
    check_folders_above(out, flag)
    return out


def check_folder_out(out, flag: str = "--out") -> Path:
    """A folder a command writes its report files into: refused if it is a file; created later."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder; give a folder path")
    check_folders_above(out, flag)
    return out


def run_folder(run_dir) -> Path:
    """A run directory that exists: a missing one and a file given in its place are told apart."""
    folder = Path(run_dir).expanduser()
    if folder.is_file():
        raise UserError(f"{run_dir} is a file, not a run directory; give the run's output_dir")
    if not folder.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    return folder


def check_folders_above(out, flag: str = "--out") -> None:
    """The folders that will be created for `out` can be: the nearest one that exists is a folder, not a
    file. Otherwise the mkdir fails only once the work is done (a model loaded, a run trained)."""
    out = Path(out).expanduser()
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out}: {parent} is a file, not a folder; give another path")
            return


def check_utf8(path: Path, key: str = "data.source") -> None:
    """Text data must be UTF-8: another encoding would be read as garbled text and trained on."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise not_utf8(path, offset + e.start, key) from None
            offset += len(chunk)


def not_utf8(path, byte: int, key: str | None = None) -> UserError:
    return UserError(f"{key + ': ' if key else ''}{path} is not UTF-8 text (byte {byte}); "
                     "convert it, e.g. iconv -f latin1 -t utf-8")


def read_jsonl(path, *, broken=None, encoding_errors: str = "strict") -> list[tuple[int, object]]:
    """(line number, value) of each non-blank line of a JSONL file.

    A line that is not JSON is skipped (the last one may be cut off by a run still writing, or killed),
    unless `broken(number, error)` is given, which may raise a UserError naming the line.
    """
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors=encoding_errors)
    except UnicodeDecodeError as e:
        raise not_utf8(path, e.start) from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError as e:
            if broken is not None:
                broken(number, e)
    return rows


def read_run_file(path) -> dict:
    """A run directory's recipe.yaml or adapter_config.json as a mapping. One cut off by a kill or broken
    by a hand edit is named in one line: every command that takes a run reads these first."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path} is damaged and cannot be read ({why}); restore it, or train the run again") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise UserError(f"{path} is damaged: it holds a {type(loaded).__name__}, not a mapping; restore it, or "
                        "train the run again")
    return loaded or {}


def write_atomically(path, text: str | bytes) -> None:
    """Write `text` (or bytes) to a temporary file beside `path`, then rename: `path` is old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # never made: its folder could not be
            os.unlink(tmp)
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path, rows) -> None:
    write_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def tinyalign_home() -> Path:
    """Where built things are cached (tiny models, tiny tasks, converted GGUF): `$TINYALIGN_HOME`, default
    `~/.cache/tinyalign`."""
    return Path(os.environ.get("TINYALIGN_HOME", Path.home() / ".cache" / "tinyalign"))


def build_atomically(target: Path, write) -> Path:
    """The folder `target`, made by `write(folder)` on first use: into a temporary sibling, then renamed,
    so a killed build never leaves half a folder."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        write(tmp)
        tmp.rename(target)
    except OSError:
        if not target.exists():  # lost a race with another process: theirs is as good as ours
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
