"""The vote store: side-by-side votes from the arena app in SQLite, exported as DPO pairs.

One row per vote. `vote` is stored in terms of model_a / response_a, never in terms of the screen:
"a" means response_a won, whatever side it was shown on. `swapped` only records that the anonymous
mode showed response_a on the right; the app converts a click on a displayed side with
`unswap_vote()` before calling `record()`, and the export never looks at `swapped`.

    store = VoteStore("prefs.sqlite")      # created on first use, WAL mode, safe for many writers
    store.record(conversation=[{"role": "user", "content": "2+2?"}], response_a="4", response_b="5",
                 model_a="runs/sft", model_b="runs/grpo", vote="a", annotator="ana")
    pairs("prefs.sqlite")                  # -> [{"prompt": [...], "chosen": [...], "rejected": [...]}]
    leaderboard("prefs.sqlite")            # -> Bradley-Terry ratings per checkpoint, best first

    python -m tinyalign.prefs export prefs.sqlite --out pairs.jsonl [--dimension correctness]
    python -m tinyalign.prefs export prefs.sqlite --out sft.jsonl --sft   # completions marked good
    python -m tinyalign.prefs stats prefs.sqlite

Schema 2 adds, per vote: the queued prompt's id, a verdict per preference dimension (same "a"/"b"/"tie"
terms as `vote`), the annotator's rationale, and `superseded`: an undone vote is kept, marked with the
time it was undone, and left out of the export and the ratings. Tags on one answer rather than on the
vote (per-side tags) are kept in the settings JSON as settings.side_tags {"a": [...], "b": [...]}, in
model_a/model_b terms like `vote`; `tags` stays the vote's own list. A schema-1 store is migrated in place
when opened (new columns only; every schema-1 value stays as it was).

The app's Review tab stores its verdicts on a GRPO run's completions here too (settings.review): a bad
completion with a correction is a vote for the correction (a DPO pair); a completion marked good is
a row with settings.verdict "good" and the completion as response_a, exported as an SFT row
(prompt/completion) by `export --sft`, never as a pair. Neither is a checkpoint in the ratings.
"""

import contextlib
import json
import sqlite3
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinyalign import files
from tinyalign.ratings import bradley_terry, style_features
from tinyalign.errors import ArgumentParser, UserError, cli

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

# Why a vote yields no pair, as printed by `export` and put in load_pairs' error.
DROP_TIE = "tie without an edited answer"
DROP_BOTH_BAD = "both_bad without an edited answer"
DROP_SAME = "chosen equals rejected"
DROP_DUPLICATE = "duplicate pair"
DROP_GOOD = "completion marked good (an SFT row: export with --sft)"
SFT_COLUMNS = ("prompt", "completion")


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

    def __init__(self, path, *, create=True, timeout=10.0):
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            with self._sqlite_errors():
                self._open()
        except BaseException:
            self._conn.close()
            raise

    def _refuse_foreign_bytes(self):
        # Checked before SQLite touches the file: a non-database must come out byte-for-byte unchanged.
        if self.path.stat().st_size and not files.is_sqlite(self.path):
            raise UserError(f"{self.path} is not an SQLite database, so not a vote store; it was left "
                            "untouched: give another path or move the file aside")

    def _open(self):
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


def _read_votes(store_or_path, dimension=None):
    """The votes that count (undone ones left out). With a dimension: the votes that judged it, each with
    its verdict there as `vote` and no edit (a better answer was written for the vote as a whole)."""
    if isinstance(store_or_path, VoteStore):
        votes = store_or_path.votes(current=True)
    else:
        with VoteStore(store_or_path, create=False) as store:
            votes = store.votes(current=True)
    if dimension is None:
        return votes
    judged = [{**v, "vote": v["dimensions"][dimension], "edited": None} for v in votes if dimension in v["dimensions"]]
    if votes and not judged:
        known = sorted({d for v in votes for d in v["dimensions"]})
        raise UserError(f"no vote judged the dimension {dimension!r}; "
                        + (f"the votes judged: {', '.join(known)}" if known else "no vote has per-dimension verdicts"))
    return judged


def _winner(vote):
    """The checkpoint a vote preferred, or "" for a tie / both bad: comparable across sides and orders."""
    return {"a": vote["model_a"], "b": vote["model_b"]}.get(vote["vote"], "")


def agreement(votes):
    """How often two annotators who judged the same prompt for the same pair of checkpoints agree.

    Same prompt = same queued prompt id, or the same conversation in free chat. Returns {items: prompts
    with 2+ annotators, pairs: annotator pairs compared, agree: those who preferred the same one}.
    """
    groups: dict = {}
    for v in votes:
        prompt = v.get("prompt_id") or json.dumps(v["conversation"], sort_keys=True, ensure_ascii=False)
        key = (prompt, tuple(sorted((v["model_a"], v["model_b"]))))
        groups.setdefault(key, {})[v["annotator"]] = _winner(v)  # an annotator's latest vote counts
    items = pairs_ = agree = 0
    for by_annotator in groups.values():
        winners = list(by_annotator.values())
        if len(winners) < 2:
            continue
        items += 1
        for i in range(len(winners)):
            for j in range(i + 1, len(winners)):
                pairs_ += 1
                agree += winners[i] == winners[j]
    return {"items": items, "pairs": pairs_, "agree": agree}


# ---------------------------------------------------------------- export to DPO pairs

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def marked_good(vote) -> bool:
    """A Review-tab verdict that the completion (response_a) is good as it is."""
    return bool(vote["settings"].get("review")) and vote["settings"].get("verdict") == "good"


def _prompt(vote):
    prompt = [{"role": m["role"], "content": m["content"]} for m in vote["conversation"]]
    system = vote["settings"].get("system")
    if system and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": system})  # train on what the models were shown
    return prompt


def sft_rows(votes):
    """SFT rows {"prompt", "completion"} (TRL's conversational prompt-completion format) from the
    completions marked good, duplicates dropped."""
    rows, seen = [], set()
    for vote in votes:
        if not marked_good(vote):
            continue
        row = {"prompt": _prompt(vote), "completion": [{"role": "assistant", "content": vote["response_a"]}]}
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _build_pairs(votes):
    """DPO rows in TRL's conversational preference format, and a Counter of why others were dropped."""
    rows, dropped, seen = [], Counter(), set()
    for vote in votes:
        if marked_good(vote):
            dropped[DROP_GOOD] += 1
            continue
        prompt = _prompt(vote)
        edited = vote["edited"]
        if vote["vote"] in ("tie", "both_bad"):
            # Neither answer beat the other, but an answer the annotator wrote beats both: a tie's
            # correction is as much a preference as a both-bad one's.
            if not edited:
                dropped[DROP_TIE if vote["vote"] == "tie" else DROP_BOTH_BAD] += 1
                continue
            candidates = [(edited, vote["response_a"]), (edited, vote["response_b"])]
        else:
            winner, loser = "response_a", "response_b"
            if vote["vote"] == "b":
                winner, loser = loser, winner
            candidates = [(edited or vote[winner], vote[loser])]
        for chosen, rejected in candidates:
            if chosen.strip() == rejected.strip():  # nothing to learn; also catches trailing-space edits
                dropped[DROP_SAME] += 1
                continue
            row = {"prompt": prompt,
                   "chosen": [{"role": "assistant", "content": chosen}],
                   "rejected": [{"role": "assistant", "content": rejected}]}
            key = json.dumps(row, sort_keys=True, ensure_ascii=False)
            if key in seen:
                dropped[DROP_DUPLICATE] += 1
                continue
            seen.add(key)
            rows.append(row)
    return rows, dropped


def pairs(store_or_path, dimension=None):
    """DPO rows {"prompt", "chosen", "rejected"} from a VoteStore or the path of one.

    a/b: chosen = the edited answer if one was written, else the winner; rejected = the loser.
    tie or both_bad with an edited answer: two rows, edited over A and edited over B.
    Dropped: tie or both_bad without an edit, chosen == rejected, exact duplicates.
    A "system" entry in a vote's settings becomes the prompt's system message.
    """
    return _build_pairs(_read_votes(store_or_path, dimension))[0]


def load_pairs(path, dimension=None):
    """The data loader's entry for `data.source: something.sqlite` (and `data.dimension`): the export
    rows, or a UserError."""
    votes = _read_votes(path, dimension)
    rows, dropped = _build_pairs(votes)
    if not rows:
        raise _no_pairs(path, votes, dropped)
    return rows


def _no_pairs(path, votes, dropped):
    return UserError(f"vote store {path} has no usable preference pairs ({len(votes)} votes"
                     f"{'; dropped: ' + _describe(dropped) if dropped else ''}); vote A or B, or write a "
                     "better answer, in the arena app first")


def _describe(counter):
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


# ---------------------------------------------------------------- leaderboard

def leaderboard(store_or_path, *, dimension=None, resamples=200, seed=0):
    """Per checkpoint: votes, wins, losses, ties, win_rate and an Elo-scale Bradley-Terry rating with a
    bootstrap 95 % range (rating_low, rating_high), best first; and `style_rating`, the rating with
    answer length and markdown as covariates (a checkpoint that wins by being longer drops there).

    both_bad counts as a tie (neither answer was preferred). win_rate counts a tie as half a win.
    Votes comparing a checkpoint with itself say nothing about ranking and are left out. Undone votes
    are left out. With `dimension`, only the verdicts on that dimension count.
    """
    votes = [v for v in _read_votes(store_or_path, dimension)
             if v["model_a"] != v["model_b"] and not v["settings"].get("review")]  # a correction is no checkpoint
    if not votes:
        return []
    models = sorted({v[k] for v in votes for k in ("model_a", "model_b")})
    index = {m: i for i, m in enumerate(models)}
    first = np.array([index[v["model_a"]] for v in votes])
    second = np.array([index[v["model_b"]] for v in votes])
    score = np.array([{"a": 1.0, "b": 0.0}.get(v["vote"], 0.5) for v in votes])

    ratings, _ = bradley_terry(len(models), first, second, score)
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, len(models)))
    for r in range(resamples):
        sample = rng.integers(0, len(votes), len(votes))
        boot[r] = bradley_terry(len(models), first[sample], second[sample], score[sample])[0]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    styled, _ = bradley_terry(len(models), first, second, score, np.array([style_features(v) for v in votes]))

    table = []
    for i, model in enumerate(models):
        as_first, as_second = score[first == i], 1.0 - score[second == i]
        results = np.concatenate([as_first, as_second])
        wins, losses = int((results == 1).sum()), int((results == 0).sum())
        table.append({
            "model": model, "votes": len(results), "wins": wins, "losses": losses,
            "ties": len(results) - wins - losses,
            "win_rate": float(results.mean()),
            "rating": float(ratings[i]),
            # A percentile range can miss a point estimate the bootstrap finds biased; widen it so
            # the table never shows a rating outside its own range.
            "rating_low": float(min(low[i], ratings[i])),
            "rating_high": float(max(high[i], ratings[i])),
            "style_rating": float(styled[i]),
        })
    return sorted(table, key=lambda row: -row["rating"])


# ---------------------------------------------------------------- command line

def export(store_or_path, out, dimension=None, sft=False) -> dict:
    """Write a store's DPO pairs to `out` (JSONL, atomically): what the export command and the app's
    Export tab both do. Returns {pairs, votes, dropped}; UserError when no vote makes a pair.
    sft=True writes the completions marked good as SFT rows instead: {rows, votes}."""
    if sft and dimension:
        raise UserError("--sft exports the completions marked good, which have no dimensions; drop --dimension")
    # never over the store, another store or any file that is not a pairs file: checked before reading
    out = files.check_jsonl_out(out, columns=SFT_COLUMNS if sft else PAIR_COLUMNS,
                                inputs=[getattr(store_or_path, "path", store_or_path)])
    votes = _read_votes(store_or_path, dimension)
    if sft:
        rows = sft_rows(votes)
        if not rows:
            raise UserError(f"vote store {getattr(store_or_path, 'path', store_or_path)} has no completion marked "
                            "good; mark some in the app's Review tab (--completions RUN_DIR) first")
        files.write_jsonl(out, rows)
        return {"rows": len(rows), "votes": len(votes)}
    rows, dropped = _build_pairs(votes)
    if not rows:  # an empty dataset would only fail later, in DPO
        raise _no_pairs(getattr(store_or_path, "path", store_or_path), votes, dropped)
    files.write_jsonl(out, rows)
    return {"pairs": len(rows), "votes": len(votes), "dropped": _describe(dropped) if dropped else "nothing"}


def _export(args):
    if args.sft:
        done = export(args.db, args.out, args.dimension, sft=True)
        print(f"wrote {done['rows']} SFT rows (completions marked good) to {args.out}")
        return
    done = export(args.db, args.out, args.dimension)
    print(f"wrote {done['pairs']} DPO pairs from {done['votes']} votes to {args.out}")
    print(f"dropped: {done['dropped']}")


def _stats(args):
    with VoteStore(args.db, create=False) as store:
        everything = store.votes()
        votes = [v for v in everything if v["superseded"] is None]
        table = leaderboard(store)
        dimensions = sorted({d for v in votes for d in v["dimensions"]})
        per_dimension = {d: leaderboard(store, dimension=d, resamples=50) for d in dimensions}
    undone = len(everything) - len(votes)
    print(f"{args.db}: {len(votes)} votes" + (f" ({undone} more undone, not counted)" if undone else ""))
    for title, counts in (("by vote", Counter(v["vote"] for v in votes)),
                          ("by annotator", Counter(v["annotator"] for v in votes)),
                          ("by tag", Counter(t for v in votes for t in v["tags"])),
                          ("by checkpoint and tag", Counter(
                              f"{v['model_' + side]} {t}" for v in votes
                              for side, tags in v["settings"].get("side_tags", {}).items() for t in tags))):
        print(f"{title}: " + (", ".join(f"{k} {n}" for k, n in counts.most_common()) or "none"))
    bias = position_bias(votes)
    if bias:
        print(f"position: the left answer won {bias[0]} of {bias[1]} a/b votes "
              f"({bias[0] / bias[1]:.0%}; about 50% means no position bias)")
    agreed = agreement(votes)
    if agreed["pairs"]:
        print(f"agreement: {agreed['agree']} of {agreed['pairs']} annotator pairs preferred the same answer "
              f"({agreed['agree'] / agreed['pairs']:.0%}) on {agreed['items']} prompts judged by 2+ annotators")
    same = sum(v["model_a"] == v["model_b"] for v in votes)
    if same:
        print(f"{same} votes compare a checkpoint with itself and are not rated")
    if not table:
        return
    width = max(10, *(len(row["model"]) for row in table))
    print(f"\n{'rank':>4}  {'checkpoint':<{width}}  {'rating':>6}  {'95% range':>11}  {'style-ctl':>9}  "
          f"{'votes':>5}  {'wins':>4}  {'losses':>6}  {'ties':>4}  {'win rate':>8}")
    for rank, row in enumerate(table, 1):
        span = f"{row['rating_low']:.0f}..{row['rating_high']:.0f}"
        print(f"{rank:>4}  {row['model']:<{width}}  {row['rating']:>6.0f}  {span:>11}  {row['style_rating']:>9.0f}  "
              f"{row['votes']:>5}  {row['wins']:>4}  {row['losses']:>6}  {row['ties']:>4}  {row['win_rate']:>8.0%}")
    print("(Bradley-Terry, Elo scale; both_bad counts as a tie, a tie as half a win; style-ctl: the rating "
          "with answer length and markdown as covariates)")
    if per_dimension:
        models = [row["model"] for row in table]
        print(f"\nper dimension (rating, votes):\n{'checkpoint':<{width}}  "
              + "  ".join(f"{d:>14}" for d in dimensions))
        for model in models:
            cells = []
            for d in dimensions:
                row = next((r for r in per_dimension[d] if r["model"] == model), None)
                cells.append(f"{row['rating']:.0f} ({row['votes']})".rjust(14) if row else f"{'-':>14}")
            print(f"{model:<{width}}  " + "  ".join(cells))


def position_bias(votes):
    """(left wins, a/b votes): the left side won = response_a won and was on the left, or response_b
    won and response_a was on the right. None without a/b votes."""
    decisive = [v for v in votes if v["vote"] in ("a", "b")]
    if not decisive:
        return None
    return sum((v["vote"] == "a") != v["swapped"] for v in decisive), len(decisive)


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.prefs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write DPO pairs as JSONL (TRL conversational format)")
    export.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    export.add_argument("--out", required=True, help="the JSONL file to write")
    export.add_argument("--dimension", help="pairs from the verdicts on this preference dimension (e.g. "
                                            "correctness) instead of the overall votes")
    export.add_argument("--sft", action="store_true", help="write the completions marked good in the Review "
                                                           "tab as SFT rows (prompt/completion) instead of pairs")
    export.set_defaults(run=_export)
    stats = commands.add_parser("stats", help="counts per checkpoint, vote, annotator, and the leaderboard")
    stats.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    stats.set_defaults(run=_stats)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
