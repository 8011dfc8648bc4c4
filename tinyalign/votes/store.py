"""The vote store: side-by-side votes in one SQLite file, its schema and its migrations.

One row per vote. `vote` is stored in terms of model_a / response_a, never in terms of the screen:
"a" means response_a won, whatever side it was shown on. `swapped` only records that the anonymous
mode showed response_a on the right; the app converts a click on a displayed side with
`unswap_vote()` before calling `record()`, and the export never looks at `swapped`.

    store = VoteStore("prefs.sqlite")      # created on first use, WAL mode, safe for many writers
    store.record(conversation=[{"role": "user", "content": "2+2?"}], response_a="4", response_b="5",
                 model_a="runs/sft", model_b="runs/grpo", vote="a", annotator="ana")
    store.votes(current=True)              # the votes that count, oldest first

Schema 2 adds, per vote: the queued prompt's id, a verdict per preference dimension (same "a"/"b"/"tie"
terms as `vote`), the annotator's rationale, and `superseded`: an undone vote is kept, marked with the
time it was undone, and left out of the export and the ratings. Tags on one answer rather than on the
vote (per-side tags) are kept in the settings JSON as settings.side_tags {"a": [...], "b": [...]}, in
model_a/model_b terms like `vote`; `tags` stays the vote's own list. A schema-1 store is migrated in place
when opened (new columns only; every schema-1 value stays as it was); a store written by a newer schema
is refused and left as it is.

Rows that are not a comparison of two checkpoints are marked in `settings`: settings.review for the
app's Review tab (a correction, or settings.verdict "good" for a completion marked good), and
settings.gold for a gold item of a labeling session (response_a is the known better answer). Neither
is a checkpoint in the ratings.
"""

import contextlib
import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import UserError

VOTES = ("a", "b", "tie", "both_bad")
SCHEMA_VERSION = 2  # PRAGMA user_version; bump it and add a migration to _MIGRATIONS when the table changes
VERDICTS = ("a", "b", "tie")  # per dimension
_SCHEMA = """
CREATE TABLE votes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so an acknowledged id stays unique
    time         TEXT NOT NULL,                      -- UTC, ISO 8601
    annotator    TEXT NOT NULL,
    conversation TEXT NOT NULL,                      -- JSON [{"role","content"}...] ending with the user turn
    response_a   TEXT NOT NULL,
    response_b   TEXT NOT NULL,
    model_a      TEXT NOT NULL,                      -- checkpoint names
    model_b      TEXT NOT NULL,
    run_dir_a    TEXT,
    run_dir_b    TEXT,
    settings     TEXT NOT NULL,                      -- JSON {temperature, max_new_tokens, system, ...}
    swapped      INTEGER NOT NULL CHECK (swapped IN (0, 1)),  -- response_a was shown on the right
    vote         TEXT NOT NULL CHECK (vote IN ('a', 'b', 'tie', 'both_bad')),  -- 'a' = response_a won
    edited       TEXT,                               -- a better answer written by the annotator
    tags         TEXT NOT NULL,                      -- JSON list, e.g. ["wrong", "verbose"]
    prompt_id    TEXT,                               -- the queued prompt answered; NULL in free chat
    dimensions   TEXT NOT NULL DEFAULT '{}',         -- JSON {"correctness": "a" | "b" | "tie", ...}
    rationale    TEXT,                               -- why, in the annotator's words
    superseded   TEXT                                -- UTC time the vote was undone; NULL while it counts
);
"""
# Schema 1 -> 2: columns added at the end, so no schema-1 value is rewritten.
_MIGRATIONS = {1: ["ALTER TABLE votes ADD COLUMN prompt_id TEXT",
                   "ALTER TABLE votes ADD COLUMN dimensions TEXT NOT NULL DEFAULT '{}'",
                   "ALTER TABLE votes ADD COLUMN rationale TEXT",
                   "ALTER TABLE votes ADD COLUMN superseded TEXT"]}
_COLUMNS_V1 = ("id", "time", "annotator", "conversation", "response_a", "response_b", "model_a", "model_b",
               "run_dir_a", "run_dir_b", "settings", "swapped", "vote", "edited", "tags")
_COLUMNS = (*_COLUMNS_V1, "prompt_id", "dimensions", "rationale", "superseded")

def unswap_vote(displayed_vote, swapped):
    """The stored vote for a click on the screen: "a"/"b" name the left/right side as displayed.

    With swapped=True the left side showed response_b, so a click on the left is a vote for "b".
    """
    if displayed_vote not in VOTES:
        raise UserError(f"vote must be one of {', '.join(VOTES)}, got {displayed_vote!r}")
    if swapped and displayed_vote in ("a", "b"):
        return "b" if displayed_vote == "a" else "a"
    return displayed_vote


class VoteStore:
    """Votes in one SQLite file. Safe to share between threads; many processes may open the same file.

    create=False refuses a missing file instead of creating an empty store (export, stats, training).
    timeout is how long to wait for another writer before giving up with a UserError.
    """

    def __init__(self, path, *, create=True, timeout=10.0, check_only=False):
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()  # one connection, many Gradio worker threads: one statement at a time
        if self.path.is_dir():
            raise UserError(f"vote store {self.path} is a folder; give the path of a .sqlite file")
        # An empty file holds nothing to lose, so the app may make it a store; a reader must not.
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise UserError(f"vote store {self.path} does not exist or is empty; check the path "
                            "(the arena app creates it when the first vote is recorded)")
        if self.path.exists():
            self._refuse_foreign_bytes()
        else:
            files.check_folders_above(self.path, "vote store")
            if check_only:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_only reads through an immutable connection: no WAL side files, no journal switch, no migration
        target = f"file:{self.path.absolute()}?mode=ro&immutable=1" if check_only else self.path
        self._conn = sqlite3.connect(target, timeout=timeout, isolation_level=None, check_same_thread=False,
                                     uri=check_only)
        try:
            with self._sqlite_errors():
                self._open(check_only)
        except BaseException:
            self._conn.close()
            raise
        if check_only:
            self._conn.close()

    @classmethod
    def check(cls, path) -> None:
        """What opening `path` would refuse (a folder, a file that is not a store, a newer schema, damage, a file
        where its folder goes), found without changing a byte: for a command that records its votes only after
        minutes of work."""
        cls(path, check_only=True)

    def _refuse_foreign_bytes(self):
        # Checked before SQLite touches the file: a non-database must come out byte-for-byte unchanged.
        if self.path.stat().st_size and not files.is_sqlite(self.path):
            raise UserError(f"{self.path} is not an SQLite database, so not a vote store; it was left "
                            "untouched: give another path or move the file aside")

    def _open(self, check_only=False):
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        # One read transaction: read apart, another process creating this store could commit between
        # the two reads, and its half-seen store (tables, no version yet) would look foreign.
        conn.execute("BEGIN")
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        if version > SCHEMA_VERSION:
            # Its newer columns would be dropped from the export without a word: refuse, change nothing.
            raise UserError(f"vote store {self.path} was written by a newer tinyalign (schema {version}, this one "
                            f"reads up to {SCHEMA_VERSION}); upgrade: pip install -U tinyalign; it was left untouched")
        if version == 0 and tables:
            raise UserError(f"{self.path} is an SQLite database but not a tinyalign vote store (it has tables "
                            f"{', '.join(sorted(tables))}); it was left untouched: give another path")
        if version:
            self._check_existing(tables, _COLUMNS if version == SCHEMA_VERSION else _COLUMNS_V1)
        if check_only:
            return
        # WAL: readers never block the writer and a crashed writer cannot damage committed votes.
        conn.execute("PRAGMA journal_mode = WAL")
        if version and version < SCHEMA_VERSION:
            self._migrate()
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")  # two processes may create the same new store at once
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                    conn.execute(_SCHEMA)  # not executescript: it would COMMIT our transaction first
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _migrate(self):
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # one transaction: migrated completely or not at all
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _check_existing(self, tables, expected):
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(votes)")}
        missing = [c for c in expected if c not in columns]
        if "votes" not in tables or missing:
            raise UserError(f"vote store {self.path} has the wrong schema (missing {', '.join(missing)}); "
                            "it was left untouched: restore a backup or give another path")
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise UserError(f"vote store {self.path} is damaged ({problems[0]}); it was left untouched: "
                            f"restore a backup, or salvage rows with `sqlite3 {self.path} .recover`")

    @contextlib.contextmanager
    def _sqlite_errors(self, waited=None):
        """Turn SQLite's failures on this file into one line that names it and says what to do."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                waited = self.timeout if waited is None else waited
                raise UserError(f"vote store {self.path} is locked: another process held it for more than "
                                f"{waited:g} s (a stuck app, or an open sqlite3 shell?); close it and retry") from None
            raise UserError(f"cannot use vote store {self.path}: {e}; check the file's permissions and "
                            "free disk space") from None
        except sqlite3.DatabaseError as e:
            if type(e) is not sqlite3.DatabaseError:  # IntegrityError, ProgrammingError...: our bug
                raise
            raise UserError(f"vote store {self.path} is damaged or not a database ({e}); it was left "
                            f"untouched: restore a backup, or salvage rows with "
                            f"`sqlite3 {self.path} .recover`") from None

    def wait_for_writers(self, seconds):
        """From now on wait up to `seconds` for another writer before a UserError."""
        with self._lock:
            self.timeout = seconds
            self._conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def check_writable(self, wait=2.0):
        """Refuse now, not at the first vote, a store another process holds for writing (a stuck app,
        a sqlite3 shell inside a transaction): take the write lock, waiting at most `wait` s, and let go."""
        with self._lock, self._sqlite_errors(wait):
            self._conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("ROLLBACK")
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def record(self, *, conversation, response_a, response_b, model_a, model_b, vote, annotator="anonymous",
               run_dir_a=None, run_dir_b=None, settings=None, swapped=False, edited=None, tags=(),
               prompt_id=None, dimensions=None, rationale=None, side_tags=None):
        """Store one vote and return its id. It is committed to disk when this returns.

        vote: "a" | "b" (response_a / response_b is better) | "tie" | "both_bad" — in terms of
        model_a/model_b, not of the screen (see unswap_vote). dimensions: {name: "a" | "b" | "tie"}, in
        the same terms, for the dimensions the annotator judged (the others are left out). side_tags:
        {"a": [...], "b": [...]}, tags on response_a / response_b, kept as settings["side_tags"].
        """
        _check_conversation(conversation)
        for name, value in (("response_a", response_a), ("response_b", response_b),
                            ("model_a", model_a), ("model_b", model_b), ("annotator", annotator)):
            if not isinstance(value, str):
                raise UserError(f"{name} must be a string, got {type(value).__name__}")
        for name, value in (("model_a", model_a), ("model_b", model_b), ("annotator", annotator)):
            if not value.strip():
                raise UserError(f"{name} must not be empty")
        if vote not in VOTES:
            raise UserError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
        if edited is not None and not isinstance(edited, str):
            raise UserError(f"edited must be a string or None, got {type(edited).__name__}")
        tags = list(tags)
        if not all(isinstance(t, str) for t in tags):
            raise UserError(f"tags must be strings, got {tags!r}")
        side_tags = {side: list(values) for side, values in (side_tags or {}).items() if values}
        for side, values in side_tags.items():
            if side not in ("a", "b") or not all(isinstance(t, str) for t in values):
                raise UserError(f"side_tags: give {{\"a\": [...], \"b\": [...]}} lists of tag strings, got "
                                f"{side!r}: {values!r}")
        if side_tags:
            settings = {**(settings or {}), "side_tags": side_tags}
        dimensions = dict(dimensions or {})
        for name, verdict in dimensions.items():
            if not isinstance(name, str) or not name.strip() or verdict not in VERDICTS:
                raise UserError(f"dimension {name!r}: the verdict must be one of {', '.join(VERDICTS)}, "
                                f"got {verdict!r}")
        for name, value in (("prompt_id", prompt_id), ("rationale", rationale)):
            if value is not None and not isinstance(value, str):
                raise UserError(f"{name} must be a string or None, got {type(value).__name__}")
        row = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "annotator": annotator,
            "conversation": json.dumps(conversation, ensure_ascii=False),
            "response_a": response_a, "response_b": response_b, "model_a": model_a, "model_b": model_b,
            "run_dir_a": None if run_dir_a is None else str(run_dir_a),
            "run_dir_b": None if run_dir_b is None else str(run_dir_b),
            "settings": json.dumps(settings or {}, ensure_ascii=False),
            "swapped": int(bool(swapped)), "vote": vote,
            "edited": edited if edited and edited.strip() else None,  # an emptied edit box is no edit
            "tags": json.dumps(tags, ensure_ascii=False),
            "prompt_id": prompt_id,
            "dimensions": json.dumps(dimensions, ensure_ascii=False),
            "rationale": rationale if rationale and rationale.strip() else None,
        }
        sql = f"INSERT INTO votes ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
        with self._lock, self._sqlite_errors():
            # IMMEDIATE takes the write lock up front, so a busy store waits (busy_timeout) instead of
            # failing half-way; the caller may say "recorded" once COMMIT has returned.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                vote_id = self._conn.execute(sql, row).lastrowid
                self._conn.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise
        return vote_id

    def undo(self, vote_id, *, annotator=None):
        """Mark a vote superseded (kept, no longer counted); returns False when it was already.
        With `annotator`, only that annotator's own vote may be undone."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock, self._sqlite_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT annotator, superseded FROM votes WHERE id = ?",
                                         (vote_id,)).fetchone()
                if row is None or (annotator is not None and row[0] != annotator):
                    raise UserError(f"vote #{vote_id} is not in {self.path}"
                                    + ("" if row is None else f" as a vote of {annotator}"))
                if row[1] is None:
                    self._conn.execute("UPDATE votes SET superseded = ? WHERE id = ?", (now, vote_id))
                self._conn.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise
        return row[1] is None

    def votes(self, *, current=False):
        """Every vote, oldest first, as dicts with the JSON columns decoded and swapped as a bool.
        current=True leaves out superseded (undone) votes: what the export and the ratings use."""
        where = " WHERE superseded IS NULL" if current else ""
        with self._lock, self._sqlite_errors():
            rows = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM votes{where} ORDER BY id").fetchall()
        out = []
        for values in rows:
            vote = dict(zip(_COLUMNS, values))
            for key in ("conversation", "settings", "tags", "dimensions"):
                vote[key] = json.loads(vote[key])
            vote["swapped"] = bool(vote["swapped"])
            out.append(vote)
        return out

    def close(self):
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _rollback(conn):
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _check_conversation(conversation):
    if not isinstance(conversation, list) or not conversation:
        raise UserError("conversation must be a non-empty list of {'role', 'content'} messages")
    for message in conversation:
        if (not isinstance(message, dict) or not isinstance(message.get("role"), str)
                or not isinstance(message.get("content"), str)):
            raise UserError(f"each conversation message needs string 'role' and 'content', got {message!r}")
    if conversation[-1]["role"] != "user":
        raise UserError("conversation must end with the user message both responses answer")


def read_votes(store_or_path, dimension=None):
    """The votes that count (undone ones left out); with a dimension, judged_on(votes, dimension)."""
    if isinstance(store_or_path, VoteStore):
        votes = store_or_path.votes(current=True)
    else:
        with VoteStore(store_or_path, create=False) as store:
            votes = store.votes(current=True)
    return votes if dimension is None else judged_on(votes, dimension)


def judged_on(votes, dimension):
    """The votes that judged `dimension`, each with its verdict there as `vote` and no edit (a better
    answer was written for the vote as a whole)."""
    judged = [{**v, "vote": v["dimensions"][dimension], "edited": None} for v in votes if dimension in v["dimensions"]]
    if votes and not judged:
        known = sorted({d for v in votes for d in v["dimensions"]})
        raise UserError(f"no vote judged the dimension {dimension!r}; "
                        + (f"the votes judged: {', '.join(known)}" if known else "no vote has per-dimension verdicts"))
    return judged
