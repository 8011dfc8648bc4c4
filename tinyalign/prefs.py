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

    python -m tinyalign.prefs export prefs.sqlite --out pairs.jsonl
    python -m tinyalign.prefs stats prefs.sqlite
"""

import argparse
import contextlib
import json
import os
import sqlite3
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinyalign.errors import UserError, cli

VOTES = ("a", "b", "tie", "both_bad")
SCHEMA_VERSION = 1  # PRAGMA user_version; bump it and add a migration in _open() when the table changes
SQLITE_HEADER = b"SQLite format 3\x00"

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
    tags         TEXT NOT NULL                       -- JSON list, e.g. ["wrong", "verbose"]
);
"""
_COLUMNS = ("id", "time", "annotator", "conversation", "response_a", "response_b", "model_a", "model_b",
            "run_dir_a", "run_dir_b", "settings", "swapped", "vote", "edited", "tags")

# Why a vote yields no pair, as printed by `export` and put in load_pairs' error.
DROP_TIE = "tie"
DROP_BOTH_BAD = "both_bad without an edited answer"
DROP_SAME = "chosen equals rejected"
DROP_DUPLICATE = "duplicate pair"


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
        with open(self.path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:
            raise UserError(f"{self.path} is not an SQLite database, so not a vote store; it was left "
                            "untouched: give another path or move the file aside")

    def _open(self):
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise UserError(f"vote store {self.path} has schema version {version}, newer than this tinyalign "
                            f"understands ({SCHEMA_VERSION}); upgrade tinyalign")
        if version == 0 and tables:
            raise UserError(f"{self.path} is an SQLite database but not a tinyalign vote store (it has tables "
                            f"{', '.join(sorted(tables))}); it was left untouched: give another path")
        if version == SCHEMA_VERSION:
            self._check_existing(tables)
        # WAL: readers never block the writer and a crashed writer cannot damage committed votes.
        conn.execute("PRAGMA journal_mode = WAL")
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

    def _check_existing(self, tables):
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(votes)")}
        missing = [c for c in _COLUMNS if c not in columns]
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
                                f"{self.timeout:g} s (a stuck app, or an open sqlite3 shell?); close it and "
                                "retry") from None
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
               run_dir_a=None, run_dir_b=None, settings=None, swapped=False, edited=None, tags=()):
        """Store one vote and return its id. It is committed to disk when this returns.

        vote: "a" | "b" (response_a / response_b is better) | "tie" | "both_bad" — in terms of
        model_a/model_b, not of the screen (see unswap_vote).
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

    def votes(self):
        """Every vote, oldest first, as dicts with the JSON columns decoded and swapped as a bool."""
        with self._lock, self._sqlite_errors():
            rows = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM votes ORDER BY id").fetchall()
        out = []
        for values in rows:
            vote = dict(zip(_COLUMNS, values))
            for key in ("conversation", "settings", "tags"):
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


def _read_votes(store_or_path):
    if isinstance(store_or_path, VoteStore):
        return store_or_path.votes()
    with VoteStore(store_or_path, create=False) as store:
        return store.votes()


# ---------------------------------------------------------------- export to DPO pairs

def _build_pairs(votes):
    """DPO rows in TRL's conversational preference format, and a Counter of why others were dropped."""
    rows, dropped, seen = [], Counter(), set()
    for vote in votes:
        prompt = [{"role": m["role"], "content": m["content"]} for m in vote["conversation"]]
        system = vote["settings"].get("system")
        if system and prompt[0]["role"] != "system":
            prompt.insert(0, {"role": "system", "content": system})  # train on what the models were shown
        edited = vote["edited"]
        if vote["vote"] == "tie":
            dropped[DROP_TIE] += 1
            continue
        if vote["vote"] == "both_bad":
            if not edited:
                dropped[DROP_BOTH_BAD] += 1
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


def pairs(store_or_path):
    """DPO rows {"prompt", "chosen", "rejected"} from a VoteStore or the path of one.

    a/b: chosen = the edited answer if one was written, else the winner; rejected = the loser.
    both_bad with an edited answer: two rows, edited over A and edited over B.
    Dropped: tie, both_bad without an edit, chosen == rejected, exact duplicates.
    A "system" entry in a vote's settings becomes the prompt's system message.
    """
    return _build_pairs(_read_votes(store_or_path))[0]


def load_pairs(path):
    """The data loader's entry for `data.source: something.sqlite`: the export rows, or a UserError."""
    votes = _read_votes(path)
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

def _bradley_terry(n_models, first, second, score, prior=0.5):
    """Elo-scale Bradley-Terry ratings: the maximum-likelihood strengths, found by Newton's method.

    score is 1 when `first` won, 0 when it lost, 0.5 for a tie. Each model also plays `prior` wins and
    `prior` losses against a phantom rated 1000: an unbeaten model stays finite, a model with few votes
    stays near 1000, and the phantom pins the scale so no renormalising is needed.
    """
    wins = np.zeros((n_models, n_models))
    np.add.at(wins, (first, second), score)
    np.add.at(wins, (second, first), 1.0 - score)
    games = wins + wins.T

    def log_likelihood(theta):
        diff = theta[:, None] - theta[None, :]
        phantom = np.logaddexp(0, -theta) + np.logaddexp(0, theta)
        return -(wins * np.logaddexp(0, -diff)).sum() - prior * phantom.sum()

    theta = np.zeros(n_models)  # natural-log strengths
    for _ in range(100):
        p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j]: chance i beats j
        q = 1 / (1 + np.exp(-theta))                            # chance of beating the phantom
        gradient = (wins - games * p).sum(axis=1) + prior - 2 * prior * q
        weight = games * p * (1 - p)
        hessian = weight - np.diag(weight.sum(axis=1) + 2 * prior * q * (1 - q))
        step = np.linalg.solve(hessian, -gradient)
        # Halve the step while it lowers the likelihood: a full Newton step can overshoot when one
        # model won nearly everything.
        size, before = 1.0, log_likelihood(theta)
        while log_likelihood(theta + size * step) < before and size > 1e-6:
            size /= 2
        theta = theta + size * step
        if np.max(np.abs(size * step)) < 1e-9:
            break
    return 1000.0 + 400.0 * theta / np.log(10)


def leaderboard(store_or_path, *, resamples=200, seed=0):
    """Per checkpoint: votes, wins, losses, ties, win_rate and an Elo-scale Bradley-Terry rating with a
    bootstrap 95 % range (rating_low, rating_high), best first.

    both_bad counts as a tie (neither answer was preferred). win_rate counts a tie as half a win.
    Votes comparing a checkpoint with itself say nothing about ranking and are left out.
    """
    votes = [v for v in _read_votes(store_or_path) if v["model_a"] != v["model_b"]]
    if not votes:
        return []
    models = sorted({v[k] for v in votes for k in ("model_a", "model_b")})
    index = {m: i for i, m in enumerate(models)}
    first = np.array([index[v["model_a"]] for v in votes])
    second = np.array([index[v["model_b"]] for v in votes])
    score = np.array([{"a": 1.0, "b": 0.0}.get(v["vote"], 0.5) for v in votes])

    ratings = _bradley_terry(len(models), first, second, score)
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, len(models)))
    for r in range(resamples):
        sample = rng.integers(0, len(votes), len(votes))
        boot[r] = _bradley_terry(len(models), first[sample], second[sample], score[sample])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)

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
        })
    return sorted(table, key=lambda row: -row["rating"])


# ---------------------------------------------------------------- command line

def _write_jsonl_atomically(rows, out):
    """Write to a temporary file beside `out`, then rename: an error leaves no half-written file."""
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise UserError(f"cannot write {out}: {e.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def export(store_or_path, out) -> dict:
    """Write a store's DPO pairs to `out` (JSONL, atomically): what the export command and the app's
    Export tab both do. Returns {pairs, votes, dropped}; UserError when no vote makes a pair."""
    votes = _read_votes(store_or_path)
    rows, dropped = _build_pairs(votes)
    if not rows:  # an empty dataset would only fail later, in DPO
        raise _no_pairs(getattr(store_or_path, "path", store_or_path), votes, dropped)
    _write_jsonl_atomically(rows, out)
    return {"pairs": len(rows), "votes": len(votes), "dropped": _describe(dropped) if dropped else "nothing"}


def _export(args):
    done = export(args.db, args.out)
    print(f"wrote {done['pairs']} DPO pairs from {done['votes']} votes to {args.out}")
    print(f"dropped: {done['dropped']}")


def _stats(args):
    with VoteStore(args.db, create=False) as store:
        votes = store.votes()
        table = leaderboard(store)
    print(f"{args.db}: {len(votes)} votes")
    for title, counts in (("by vote", Counter(v["vote"] for v in votes)),
                          ("by annotator", Counter(v["annotator"] for v in votes)),
                          ("by tag", Counter(t for v in votes for t in v["tags"]))):
        print(f"{title}: " + (", ".join(f"{k} {n}" for k, n in counts.most_common()) or "none"))
    decisive = [v for v in votes if v["vote"] in ("a", "b")]
    if decisive:
        # The left side won = response_a won and was on the left, or response_b won and A was on the right.
        left = sum((v["vote"] == "a") != v["swapped"] for v in decisive)
        print(f"position: the left answer won {left} of {len(decisive)} a/b votes "
              f"({left / len(decisive):.0%}; about 50% means no position bias)")
    same = sum(v["model_a"] == v["model_b"] for v in votes)
    if same:
        print(f"{same} votes compare a checkpoint with itself and are not rated")
    if not table:
        return
    width = max(10, *(len(row["model"]) for row in table))
    print(f"\n{'rank':>4}  {'checkpoint':<{width}}  {'rating':>6}  {'95% range':>11}  "
          f"{'votes':>5}  {'wins':>4}  {'losses':>6}  {'ties':>4}  {'win rate':>8}")
    for rank, row in enumerate(table, 1):
        span = f"{row['rating_low']:.0f}..{row['rating_high']:.0f}"
        print(f"{rank:>4}  {row['model']:<{width}}  {row['rating']:>6.0f}  {span:>11}  {row['votes']:>5}  "
              f"{row['wins']:>4}  {row['losses']:>6}  {row['ties']:>4}  {row['win_rate']:>8.0%}")
    print("(Bradley-Terry, Elo scale; both_bad counts as a tie, a tie as half a win)")


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyalign.prefs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write DPO pairs as JSONL (TRL conversational format)")
    export.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    export.add_argument("--out", required=True, help="the JSONL file to write")
    export.set_defaults(run=_export)
    stats = commands.add_parser("stats", help="counts per checkpoint, vote, annotator, and the leaderboard")
    stats.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    stats.set_defaults(run=_stats)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
