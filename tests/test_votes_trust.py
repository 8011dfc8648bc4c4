"""Votes you can trust: gold items in the store, each annotator's agreement with gold and with the
others, and an export that leaves out the annotators below a threshold."""

import json

import pytest

from tinyalign.core.errors import UserError
from tinyalign.prefs import main
from tinyalign.votes import VoteStore, leaderboard, load_pairs
from tinyalign.votes.trust import GOLD_BETTER, GOLD_WORSE, by_annotator


def ask(n):
    return [{"role": "user", "content": f"What is {n}+{n}?"}]


def vote(store, annotator, n, verdict, *, a=None, b=None):
    """A vote on prompt n between the checkpoints right (answers 2n) and wrong (2n+1)."""
    return store.record(conversation=ask(n), response_a=a or str(2 * n), response_b=b or str(2 * n + 1),
                        model_a="right", model_b="wrong", vote=verdict, annotator=annotator, prompt_id=f"q{n}")


def gold(store, annotator, n, verdict):
    """A vote on gold item n: response_a is its known better answer."""
    return store.record(conversation=ask(n), response_a=str(2 * n), response_b="I don't know",
                        model_a=GOLD_BETTER, model_b=GOLD_WORSE, vote=verdict, annotator=annotator,
                        prompt_id=f"gold{n}", settings={"gold": True}, swapped=n % 2 == 1)


@pytest.fixture
def session(tmp_path):
    """ana gets 3 of 3 gold items right, bo 1 of 3; cy voted on no gold item and shares prompts with
    nobody. On prompts 1-4 ana and bo disagree on 3 of 4."""
    path = tmp_path / "prefs.sqlite"
    with VoteStore(path) as store:
        for n, verdict in zip((10, 11, 12), "aaa"):
            gold(store, "ana", n, verdict)
        for n, verdict in zip((10, 11, 12), ("b", "tie", "a")):
            gold(store, "bo", n, verdict)
        for n, (mine, theirs) in zip((1, 2, 3, 4), (("a", "b"), ("a", "b"), ("a", "a"), ("a", "both_bad"))):
            vote(store, "ana", n, mine)
            vote(store, "bo", n, theirs)
        vote(store, "cy", 5, "a")
    return path


def test_each_annotator_is_measured_on_gold_and_against_the_others(session):
    with VoteStore(session, create=False) as store:
        table = by_annotator(store.votes(current=True))
    assert {name: (row["gold"], row["gold_agree"], row["peers"], row["peers_agree"]) for name, row in table.items()} \
        == {"ana": (3, 3, 7, 2), "bo": (3, 1, 7, 2), "cy": (0, 0, 0, 0)}
    assert (table["ana"]["score"], table["bo"]["score"], table["cy"]["score"]) == (1.0, pytest.approx(1 / 3), None)
    # A gold item's known answer is no checkpoint: the leaderboard rates only right and wrong.
    assert sorted(row["model"] for row in leaderboard(session)) == ["right", "wrong"]


def test_stats_shows_each_annotators_agreement(session, capsys):
    main(["stats", str(session)])
    out = capsys.readouterr().out
    assert "annotator  votes  gold agreement     with others" in out
    assert "ana            7      3/3 (100%)       2/7 (29%)" in out
    assert "bo             7       1/3 (33%)       2/7 (29%)" in out
    assert "cy             1               -               -" in out


def test_the_export_leaves_out_annotators_below_the_threshold(session, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    main(["export", str(session), "--out", str(out), "--min-agreement", "0.7"])
    printed = capsys.readouterr().out
    assert "wrote 5 DPO pairs from 15 votes" in printed
    assert "7 by annotators below 70% agreement (bo: gold 1/3 (33%))" in printed  # all of bo's votes
    assert "3 gold item" in printed  # ana's: gold votes check the annotator and never become pairs
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # ana's four a-votes and cy's one: right's answer over wrong's on prompts 1-5; none of bo's b-votes.
    assert sorted((r["prompt"][0]["content"], r["chosen"][0]["content"]) for r in rows) == \
        [(f"What is {n}+{n}?", str(2 * n)) for n in (1, 2, 3, 4, 5)]
    # What DPO and the RM read with data.min_annotator_agreement: the same rows.
    assert load_pairs(session, min_agreement=0.7) == rows
    assert len(load_pairs(session)) == 7  # without a threshold bo's two b-votes are pairs too


def test_a_threshold_outside_0_to_1_is_refused_and_nothing_is_written(session, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(session), "--out", str(out), "--min-agreement", "70"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "between 0 and 1" in err and err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(UserError, match="between 0 and 1"):
        load_pairs(session, min_agreement=-0.1)


def test_a_dpo_or_rm_recipe_reads_the_store_without_the_annotators_below_its_threshold(session, tmp_path):
    from tinyalign.config import recipe
    from tinyalign.data import loading as data

    path = tmp_path / "rm.yaml"
    path.write_text(f"method: rm\nmodel: {{name: tiny:qwen2-1m}}\noutput_dir: {tmp_path / 'rm'}\n"
                    f"data: {{source: {session}, min_annotator_agreement: 0.7}}\n")
    spec = recipe.load(path)
    rows = data.load_split(spec.data, "train")
    assert len(rows) == 5 and rows.to_list() == load_pairs(session, min_agreement=0.7)
    with pytest.raises(UserError, match="min_annotator_agreement is a share between 0 and 1"):
        recipe.load(path, ["data.min_annotator_agreement=70"])
    with pytest.raises(UserError, match="pairs.jsonl is not a vote store"):
        recipe.load(path, [f"data.source={tmp_path / 'pairs.jsonl'}"])
