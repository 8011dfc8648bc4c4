"""The vote store: what is recorded is on disk, the export follows its rules, bad files are refused."""

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from tinyalign.core.errors import UserError
from tinyalign.prefs import main
from tinyalign.votes import SCHEMA_VERSION, VoteStore, leaderboard, load_pairs, unswap_vote
from tinyalign.votes.pairs import pairs

REPO = Path(__file__).resolve().parents[1]
QUESTION = [{"role": "user", "content": "What is 2+2?"}]


def vote(store, vote="a", *, a="4", b="5", model_a="runs/sft", model_b="runs/grpo", **extra):
    """Record a vote with sensible defaults; the test names only what it is about."""
    fields = dict(conversation=QUESTION, response_a=a, response_b=b, model_a=model_a, model_b=model_b,
                  vote=vote, annotator="ana")
    return store.record(**{**fields, **extra})


def export(db, out, capsys):
    """Run `prefs export` in-process; return (exit status, stdout, stderr)."""
    try:
        main(["export", str(db), "--out", str(out)])
        status = 0
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def store(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as s:
        yield s


# ---------------------------------------------------------------- recording

def test_recorded_vote_is_in_the_database_for_another_connection(store):
    vote_id = store.record(conversation=QUESTION, response_a="4", response_b="5", model_a="runs/sft",
                           model_b="runs/grpo", run_dir_a="runs/sft", run_dir_b="runs/grpo",
                           settings={"temperature": 0.7, "max_new_tokens": 64}, swapped=True, vote="a",
                           edited="2+2 = 4.", tags=["verbose"], annotator="ana")

    other = sqlite3.connect(store.path)  # not the store's connection: the vote must be committed
    other.row_factory = sqlite3.Row
    row = dict(other.execute("SELECT * FROM votes WHERE id = ?", (vote_id,)).fetchone())
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    other.close()

    assert json.loads(row["conversation"]) == QUESTION
    assert (row["response_a"], row["response_b"]) == ("4", "5")
    assert (row["model_a"], row["model_b"]) == ("runs/sft", "runs/grpo")
    assert (row["run_dir_a"], row["run_dir_b"]) == ("runs/sft", "runs/grpo")
    assert json.loads(row["settings"]) == {"temperature": 0.7, "max_new_tokens": 64}
    assert (row["swapped"], row["vote"], row["edited"], row["annotator"]) == (1, "a", "2+2 = 4.", "ana")
    assert json.loads(row["tags"]) == ["verbose"]
    assert datetime.fromisoformat(row["time"]).utcoffset().total_seconds() == 0


def test_votes_reads_back_decoded(store):
    ids = [vote(store, "a"), vote(store, "tie", tags=["wrong"], swapped=True)]
    votes = store.votes()
    assert [v["id"] for v in votes] == ids
    assert votes[1]["vote"] == "tie" and votes[1]["swapped"] is True and votes[1]["tags"] == ["wrong"]
    assert votes[0]["conversation"] == QUESTION and votes[0]["settings"] == {}


@pytest.mark.parametrize("bad, named", [
    (dict(vote="left"), "vote"),
    (dict(conversation=[]), "conversation"),
    (dict(conversation=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]), "user"),
    (dict(model_a=""), "model_a"),
    (dict(response_b=None), "response_b"),
    (dict(tags=[1]), "tags"),
])
def test_invalid_vote_is_refused_and_nothing_stored(store, bad, named):
    with pytest.raises(UserError, match=named):
        vote(store, **bad)
    assert store.votes() == []


def test_a_store_opened_twice_shares_votes(tmp_path):
    with VoteStore(tmp_path / "p.sqlite") as first, VoteStore(tmp_path / "p.sqlite") as second:
        vote(first, "a")
        vote(second, "b")
        assert [v["vote"] for v in first.votes()] == ["a", "b"]


def test_threads_sharing_one_store_lose_nothing(store):
    ids = []

    def annotate(k):
        for i in range(50):
            ids.append(vote(store, "a", a=f"t{k}-{i}"))

    threads = [threading.Thread(target=annotate, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 400
    assert sorted(v["id"] for v in store.votes()) == sorted(ids)


# ---------------------------------------------------------------- export rules

def rows_as_text(rows):
    """(chosen, rejected) contents, for readable asserts."""
    return [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows]


def test_export_row_is_trl_conversational_preference_format(store):
    vote(store, "a")
    assert pairs(store) == [{"prompt": QUESTION,
                             "chosen": [{"role": "assistant", "content": "4"}],
                             "rejected": [{"role": "assistant", "content": "5"}]}]


def test_vote_b_chooses_response_b(store):
    vote(store, "b", a="5", b="4")
    assert rows_as_text(pairs(store)) == [("4", "5")]


def test_swapped_display_is_mapped_back_to_model_a_and_b(store):
    # Anonymous mode showed response_b ("4") on the left; the annotator clicked the left side.
    vote(store, unswap_vote("a", swapped=True), a="5", b="4", swapped=True)
    # Not swapped: a click on the left is response_a.
    vote(store, unswap_vote("a", swapped=False), a="four", b="five", swapped=False)
    assert rows_as_text(pairs(store)) == [("4", "5"), ("four", "five")]
    assert [unswap_vote(v, True) for v in ("a", "b", "tie", "both_bad")] == ["b", "a", "tie", "both_bad"]


def test_edited_answer_replaces_the_winner(store):
    vote(store, "a", a="4", b="5", edited="2 + 2 = 4")
    assert rows_as_text(pairs(store)) == [("2 + 2 = 4", "5")]


def test_both_bad_with_edit_gives_two_pairs_without_edit_none(store):
    vote(store, "both_bad", a="3", b="5", edited="4")
    vote(store, "both_bad", a="3", b="5")
    vote(store, "both_bad", a="3", b="5", edited="   ")  # an emptied edit box is no edit
    assert rows_as_text(pairs(store)) == [("4", "3"), ("4", "5")]


def test_a_tie_with_an_edit_puts_the_edit_over_each_answer(store, tmp_path, capsys):
    vote(store, "tie", a="four", b="4.0", edited="4")
    vote(store, "tie", a="4", b="5", edited="4")   # the edit equals one answer: only edit over the other
    vote(store, "tie", a="3", b="5")                 # no edit: nothing to learn
    expected = [("4", "four"), ("4", "4.0"), ("4", "5")]
    assert rows_as_text(pairs(store)) == expected

    status, stdout, _ = export(store.path, tmp_path / "pairs.jsonl", capsys)
    assert status == 0 and "wrote 3 DPO pairs from 3 votes" in stdout
    assert "1 tie without an edited answer" in stdout and "1 chosen equals rejected" in stdout
    written = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in written] == expected
    assert rows_as_text(load_pairs(store.path)) == expected  # what DPO/RM read from data.source: *.sqlite


def test_ties_duplicates_and_no_difference_are_dropped(store):
    vote(store, "tie")
    vote(store, "a")
    vote(store, "a")                     # the exact same pair again
    vote(store, "a", a="4", b="4")       # both models answered the same
    vote(store, "a", a="4", b="5 ", edited="5")  # the edit equals the loser
    assert rows_as_text(pairs(store)) == [("4", "5")]


def test_system_prompt_from_settings_leads_the_prompt(store):
    vote(store, "a", settings={"system": "Answer briefly.", "temperature": 0.7})
    chat = [{"role": "system", "content": "Be kind."}, *QUESTION]
    vote(store, "a", conversation=chat, settings={"system": "Answer briefly."})  # already in the chat
    prompts = [r["prompt"] for r in pairs(store)]
    assert prompts == [[{"role": "system", "content": "Answer briefly."}, *QUESTION], chat]


def test_cli_export_writes_jsonl_that_datasets_loads(store, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    vote(store, "a")
    vote(store, "b", a="22", b="4")
    vote(store, "both_bad", a="3", b="5", edited="four")
    vote(store, "tie")
    vote(store, "a")
    out = tmp_path / "pairs.jsonl"

    status, stdout, _ = export(store.path, out, capsys)

    assert status == 0
    assert "wrote 4 DPO pairs from 5 votes" in stdout
    assert "1 tie" in stdout and "1 duplicate pair" in stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == pairs(store) == load_pairs(store.path)
    dataset = datasets.Dataset.from_list(rows)
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and len(dataset) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_failed_export_leaves_the_old_output_untouched(store, tmp_path, capsys):
    vote(store, "tie")
    out = tmp_path / "pairs.jsonl"
    previous = '{"prompt": [], "chosen": [], "rejected": []}\n'  # an earlier export's pairs
    out.write_text(previous)

    status, _, stderr = export(store.path, out, capsys)

    assert status == 2 and "no usable preference pairs" in stderr and "1 tie" in stderr
    assert out.read_text() == previous
    assert list(tmp_path.glob("*.tmp")) == list(tmp_path.glob(".*.tmp")) == []


def test_load_pairs_refuses_a_store_without_pairs(store):
    vote(store, "tie")
    vote(store, "both_bad")
    with pytest.raises(UserError, match=r"prefs\.sqlite has no usable preference pairs"):
        load_pairs(store.path)


# ---------------------------------------------------------------- leaderboard and stats

def hand_made_arena(store):
    """best beats mid 8-2, best beats worst 9-1, mid beats worst 6-4; plus 2 ties and a both_bad."""
    for winner, loser, n in [("best", "mid", 8), ("mid", "best", 2), ("best", "worst", 9), ("worst", "best", 1),
                             ("mid", "worst", 6), ("worst", "mid", 4)]:
        for i in range(n):
            # Alternate sides so the order of model_a/model_b cannot matter.
            if i % 2:
                vote(store, "a", model_a=winner, model_b=loser, a=f"{winner}{i}", b=f"{loser}{i}")
            else:
                vote(store, "b", model_a=loser, model_b=winner, a=f"{loser}{i}", b=f"{winner}{i}")
    vote(store, "tie", model_a="best", model_b="mid")
    vote(store, "tie", model_a="mid", model_b="worst")
    vote(store, "both_bad", model_a="best", model_b="worst")
    vote(store, "a", model_a="best", model_b="best")  # a checkpoint against itself: not rated


def test_leaderboard_on_a_hand_made_set(store):
    hand_made_arena(store)
    table = leaderboard(store)

    assert [row["model"] for row in table] == ["best", "mid", "worst"]
    best, mid, worst = table
    assert (best["votes"], best["wins"], best["losses"], best["ties"]) == (22, 17, 3, 2)
    assert (mid["votes"], mid["wins"], mid["losses"], mid["ties"]) == (22, 8, 12, 2)
    assert (worst["votes"], worst["wins"], worst["losses"], worst["ties"]) == (22, 5, 15, 2)
    assert best["win_rate"] == pytest.approx(18 / 22)  # a tie is half a win
    for row in table:
        assert row["rating_low"] <= row["rating"] <= row["rating_high"]
    assert best["rating"] > 1100 and worst["rating"] < 900  # on the Elo scale around 1000
    # Elo-scale meaning: the rating gap predicts best's share against mid (8 of 10, plus a tie).
    expected = 1 / (1 + 10 ** ((mid["rating"] - best["rating"]) / 400))
    assert 0.6 < expected < 0.9
    assert leaderboard(store) == table  # seeded bootstrap: the same ranges every time


def test_an_unbeaten_model_gets_a_finite_rating(store):
    for i in range(5):
        vote(store, "a", model_a="champion", model_b="other", a=f"x{i}")
    vote(store, "a", model_a="newcomer", model_b="other", a="y")
    table = {row["model"]: row for row in leaderboard(store)}
    assert 1000 < table["champion"]["rating"] < 1600
    assert table["champion"]["rating"] > table["newcomer"]["rating"] > table["other"]["rating"]
    assert table["champion"]["rating_high"] < 2000


def test_stats_prints_counts_and_leaderboard(store, capsys):
    hand_made_arena(store)
    vote(store, "tie", model_a="best", model_b="best", annotator="bo", tags=["wrong", "verbose"])
    main(["stats", str(store.path)])
    out = capsys.readouterr().out

    assert f"{store.path}: 35 votes" in out
    assert "by vote: b 16, a 15, tie 3, both_bad 1" in out
    assert "by annotator: ana 34, bo 1" in out
    assert "by tag: wrong 1, verbose 1" in out
    assert "2 votes compare a checkpoint with itself and are not rated" in out
    ranks = [line.split()[1] for line in out.splitlines() if line.strip()[:1].isdigit() and "%" in line]
    assert ranks == ["best", "mid", "worst"]


# ---------------------------------------------------------------- missing, damaged, foreign and locked files

def test_missing_store_is_an_error_and_is_not_created(tmp_path, capsys):
    missing = tmp_path / "nope.sqlite"
    for call in (lambda: VoteStore(missing, create=False), lambda: pairs(missing), lambda: load_pairs(missing),
                 lambda: leaderboard(missing)):
        with pytest.raises(UserError, match=r"nope\.sqlite does not exist"):
            call()
    status, _, stderr = export(missing, tmp_path / "out.jsonl", capsys)
    assert status == 2 and stderr.count("\n") == 1 and "nope.sqlite does not exist" in stderr
    assert list(tmp_path.iterdir()) == []


def test_empty_file_is_no_store_to_read_but_may_become_one(tmp_path):
    path = tmp_path / "prefs.sqlite"
    path.touch()
    with pytest.raises(UserError, match=r"prefs\.sqlite does not exist or is empty"):
        pairs(path)
    assert path.read_bytes() == b""
    with VoteStore(path) as store:  # the app's own open: nothing to lose, so it becomes a store
        vote(store, "a")
    assert len(pairs(path)) == 1


def test_missing_store_via_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyalign.prefs", "stats", str(tmp_path / "nope.db")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: vote store") and "nope.db does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "nope.db").exists()


def assert_refused_untouched(path, match, capsys):
    """Opening, exporting and recording all refuse the file, and leave its bytes and folder as they were."""
    before, neighbours = path.read_bytes(), sorted(path.parent.iterdir())
    for call in (lambda: VoteStore(path), lambda: VoteStore(path, create=False), lambda: load_pairs(path)):
        with pytest.raises(UserError, match=match) as error:
            call()
        assert path.name in str(error.value)
    status, _, stderr = export(path, path.parent / "out.jsonl", capsys)
    assert status == 2 and path.name in stderr and stderr.count("\n") == 1
    assert path.read_bytes() == before
    assert sorted(path.parent.iterdir()) == neighbours


def test_garbage_file_is_refused_and_left_as_is(tmp_path, capsys):
    path = tmp_path / "prefs.sqlite"
    path.write_bytes(b"these are my notes, not a database\x00\xff" * 100)
    assert_refused_untouched(path, "not an SQLite database", capsys)


def test_someone_elses_database_is_refused_and_left_as_is(tmp_path, capsys):
    path = tmp_path / "app.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE users (name TEXT)")
    other.execute("INSERT INTO users VALUES ('ana')")
    other.commit()
    other.close()
    assert_refused_untouched(path, "not a tinyalign vote store", capsys)


def test_store_from_a_newer_version_is_refused(tmp_path, capsys):
    # As a newer tinyalign would leave it: votes in it, a column this one does not know, a higher version.
    path = tmp_path / "prefs.sqlite"
    with VoteStore(path) as store:
        vote(store, "a")
        vote(store, "b")
    newer = sqlite3.connect(path)
    newer.execute("ALTER TABLE votes ADD COLUMN confidence REAL")
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.commit()
    newer.close()
    assert_refused_untouched(path, "written by a newer tinyalign.*upgrade", capsys)

    before = path.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        main(["stats", str(path)])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and "written by a newer tinyalign" in stderr and stderr.count("\n") == 1
    assert path.read_bytes() == before


def test_damaged_store_is_refused_and_left_as_is(tmp_path, capsys):
    path = tmp_path / "prefs.sqlite"
    with VoteStore(path) as store:
        for i in range(200):
            vote(store, "a", a=f"answer {i} " + "x" * 500)
    # Closing the last connection folded the WAL into the file; now damage pages in its middle.
    data = bytearray(path.read_bytes())
    assert len(data) > 20 * 4096
    data[8 * 4096:12 * 4096] = b"\x07" * (4 * 4096)
    path.write_bytes(bytes(data))
    assert_refused_untouched(path, "damaged", capsys)


def test_locked_store_gives_a_clear_error_and_keeps_the_other_writer(tmp_path):
    path = tmp_path / "prefs.sqlite"
    with VoteStore(path) as store:
        vote(store, "a")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM votes")  # uncommitted work of the lock holder

    with VoteStore(path, timeout=0.2) as blocked:
        with pytest.raises(UserError, match=r"prefs\.sqlite is locked.*0\.2 s.*close it and retry"):
            vote(blocked, "b")
        holder.execute("ROLLBACK")
        holder.close()
        vote(blocked, "b")  # once the lock is gone the same store works again
        assert [v["vote"] for v in blocked.votes()] == ["a", "b"]
