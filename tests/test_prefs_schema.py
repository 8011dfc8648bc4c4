"""The vote store's schema 2: migration from schema 1, undo, per-dimension verdicts, style-controlled
ratings and inter-annotator agreement."""

import json
import sqlite3

import pytest

from tinyalign.core.errors import UserError
from tinyalign.prefs import main
from tinyalign.votes import SCHEMA_VERSION, VoteStore, agreement, leaderboard
from tinyalign.votes.pairs import pairs

QUESTION = [{"role": "user", "content": "What is 2+2?"}]

# The table exactly as schema 1 (tinyalign before per-dimension verdicts) created it.
V1_SCHEMA = """
CREATE TABLE votes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    time         TEXT NOT NULL,
    annotator    TEXT NOT NULL,
    conversation TEXT NOT NULL,
    response_a   TEXT NOT NULL,
    response_b   TEXT NOT NULL,
    model_a      TEXT NOT NULL,
    model_b      TEXT NOT NULL,
    run_dir_a    TEXT,
    run_dir_b    TEXT,
    settings     TEXT NOT NULL,
    swapped      INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    vote         TEXT NOT NULL CHECK (vote IN ('a', 'b', 'tie', 'both_bad')),
    edited       TEXT,
    tags         TEXT NOT NULL
);
"""
V1_COLUMNS = ("id", "time", "annotator", "conversation", "response_a", "response_b", "model_a", "model_b",
              "run_dir_a", "run_dir_b", "settings", "swapped", "vote", "edited", "tags")


def vote(store, verdict="a", *, a="4", b="5", model_a="sft", model_b="dpo", **extra):
    fields = dict(conversation=QUESTION, response_a=a, response_b=b, model_a=model_a, model_b=model_b,
                  vote=verdict, annotator="ana")
    return store.record(**{**fields, **extra})


def v1_store(path):
    """A schema-1 store as the arena wrote them: WAL, user_version 1, a few varied rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(V1_SCHEMA)
    conn.execute("PRAGMA user_version = 1")
    rows = [
        ("2026-11-01T10:00:00.000+00:00", "ana", json.dumps(QUESTION), "4", "5", "sft", "dpo", "/runs/sft", None,
         json.dumps({"temperature": 0.7, "system": "Be brief."}), 0, "a", None, "[]"),
        ("2026-11-01T10:01:00.000+00:00", "bo", json.dumps([{"role": "user", "content": "héllo 👋 <b>"}],
                                                          ensure_ascii=False),
         "salut\n\n  ", "", "dpo", "sft", None, None, "{}", 1, "both_bad", "Bonjour !", '["wrong", "verbose"]'),
        ("2026-11-01T10:02:00.000+00:00", "ana", json.dumps(QUESTION), "four", "4", "sft", "dpo", None, None,
         "{}", 0, "tie", None, "[]"),
    ]
    conn.executemany(f"INSERT INTO votes ({', '.join(V1_COLUMNS[1:])}) VALUES ({', '.join('?' * 14)})", rows)
    conn.close()


def v1_values(path):
    """Every schema-1 value of every row, as SQLite's quote() writes it: type and bytes both show."""
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT {', '.join(f'quote({c})' for c in V1_COLUMNS)} FROM votes ORDER BY id").fetchall()


def test_a_schema_1_store_is_migrated_and_every_vote_stays_byte_for_byte(tmp_path):
    path = tmp_path / "prefs.sqlite"
    v1_store(path)
    before = v1_values(path)
    with VoteStore(path) as store:
        pairs_before = pairs(store)
        migrated = store.votes()
        new_id = vote(store, "b", dimensions={"correctness": "a"}, rationale="5 is wrong", prompt_id="q1")
    assert v1_values(path)[:3] == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert [(v["dimensions"], v["rationale"], v["prompt_id"], v["superseded"]) for v in migrated] == \
        [({}, None, None, None)] * 3
    assert [p["chosen"][0]["content"] for p in pairs_before] == ["4", "Bonjour !", "Bonjour !"]
    assert new_id == 4

    # Opening it again is a no-op: nothing is migrated twice.
    with VoteStore(path) as store:
        assert [v["id"] for v in store.votes()] == [1, 2, 3, 4]
    assert v1_values(path)[:3] == before


def test_undo_keeps_the_row_marked_superseded_and_out_of_export_and_ratings(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as store:
        first = vote(store, "a")
        assert store.undo(first, annotator="ana") is True
        second = vote(store, "b", settings={"revote_of": first})
        assert store.undo(first) is False  # already undone: still one row, still undone
        with pytest.raises(UserError, match=f"vote #{second} is not in .* as a vote of bo"):
            store.undo(second, annotator="bo")
        with pytest.raises(UserError, match="vote #99 is not in"):
            store.undo(99)
        rows = store.votes()
        assert [(r["id"], r["vote"], r["superseded"] is not None) for r in rows] == [(first, "a", True),
                                                                                     (second, "b", False)]
        assert [p["chosen"][0]["content"] for p in pairs(store)] == ["5"]
        [dpo, sft] = leaderboard(store)
        assert (dpo["model"], dpo["wins"], sft["losses"]) == ("dpo", 1, 1)


def test_per_dimension_verdicts_export_and_rate_apart(tmp_path, capsys):
    db = tmp_path / "prefs.sqlite"
    with VoteStore(db) as store:
        # sft is correct but dull; dpo wins on style and overall.
        for i in range(6):
            vote(store, "b", a=f"4 ({i})", b=f"**Four!** ({i})", edited="4, nicely put.",
                 dimensions={"correctness": "a", "style": "b"})
        vote(store, "tie", dimensions={"style": "tie"})
        with pytest.raises(UserError, match="dimension 'style': the verdict must be one of a, b, tie"):
            vote(store, "a", dimensions={"style": "both_bad"})
        assert len(store.votes()) == 7

        correct = pairs(store, dimension="correctness")
        assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in correct][:1] == [("4 (0)", "**Four!** (0)")]
        assert len(correct) == 6  # the edit belongs to the overall vote, not to a dimension
        overall = {row["model"]: row["rating"] for row in leaderboard(store)}
        by_correctness = {row["model"]: row["rating"] for row in leaderboard(store, dimension="correctness")}
        assert overall["dpo"] > overall["sft"] and by_correctness["sft"] > by_correctness["dpo"]
        with pytest.raises(UserError, match="no vote judged the dimension 'safety'; the votes judged: correctness, style"):
            pairs(store, dimension="safety")

    out = tmp_path / "correctness.jsonl"
    main(["export", str(db), "--out", str(out), "--dimension", "correctness"])
    assert "wrote 6 DPO pairs from 6 votes" in capsys.readouterr().out
    assert json.loads(out.read_text().splitlines()[0])["chosen"][0]["content"] == "4 (0)"

    main(["stats", str(db)])
    printed = capsys.readouterr().out
    assert "per dimension" in printed
    dimension_lines = {line.split()[0]: line.split() for line in printed.split("per dimension")[1].splitlines()[2:]}
    # sft: above 1000 on correctness, below on style; dpo the other way round.
    assert float(dimension_lines["sft"][1]) > 1000 > float(dimension_lines["sft"][3])
    assert float(dimension_lines["dpo"][1]) < 1000 < float(dimension_lines["dpo"][3])


def test_style_control_takes_away_what_length_alone_won(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as store:
        # "long" wins whenever its answer is longer, loses when it is not: the checkpoint itself is no better.
        for i in range(12):
            longer = i % 3 != 0
            vote(store, "a" if longer else "b", model_a="long", model_b="short",
                 a=("a long and detailed answer " * 4 if longer else "4"), b="4, since 2+2=4")
            vote(store, "tie", model_a="short", model_b="other", a="four", b="4444")  # same length
        rows = {row["model"]: row for row in leaderboard(store)}
    assert rows["long"]["rating"] > rows["short"]["rating"] + 50
    assert rows["long"]["style_rating"] < rows["long"]["rating"] - 50
    assert abs(rows["short"]["style_rating"] - rows["other"]["style_rating"]) < 1  # only ties between them
    assert abs(rows["long"]["style_rating"] - rows["short"]["style_rating"]) < 25


def test_agreement_between_annotators_on_the_same_prompt_and_pair(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as store:
        vote(store, "a", annotator="ana", prompt_id="q1")
        vote(store, "b", annotator="bo", prompt_id="q1", model_a="dpo", model_b="sft", a="5", b="4")  # sft too
        vote(store, "a", annotator="cy", prompt_id="q1")
        vote(store, "a", annotator="ana", prompt_id="q2")
        vote(store, "b", annotator="bo", prompt_id="q2")  # disagrees
        vote(store, "a", annotator="bo", prompt_id="q3")  # alone: nothing to compare
        result = agreement(store.votes(current=True))
    assert result == {"items": 2, "pairs": 4, "agree": 3}


def test_checking_a_store_ahead_of_a_long_command_changes_no_byte(tmp_path):
    """`loop votes` checks its store before minutes of generation, and may still fail after (a policy that
    does not load): the check neither migrates a schema-1 store, nor creates one, nor leaves side files."""
    old = tmp_path / "old.sqlite"
    v1_store(old)
    before = old.read_bytes()
    VoteStore.check(old)
    assert old.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["old.sqlite"]
    VoteStore.check(tmp_path / "new" / "votes.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.sqlite"]
    newer = tmp_path / "newer.sqlite"
    VoteStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UserError, match="written by a newer tinyalign"):
        VoteStore.check(newer)
