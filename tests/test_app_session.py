"""A labeling session below the browser: the prompt queue, --dimensions, and a match's vote, undo and
identity rules. No model: answers are given to the match directly."""

import json

import pytest

from tinyalign.app import prompts
from tinyalign.app.arena import Match
from tinyalign.app.cli import parse_dimensions
from tinyalign.core.errors import UserError
from tinyalign.prefs import VoteStore


def answered(match, a="4", b="5", text="What is 2+2?"):
    match.ask(text)
    match.answer(a, b, {"temperature": 0.0})
    return match


def test_a_vote_needs_a_name_and_its_dimensions_follow_the_sides(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as store:
        match = answered(Match(model_a="sft", model_b="dpo", anonymous=True, swapped=True))  # dpo on the left
        with pytest.raises(UserError, match="who is voting"):
            match.vote(store, "a", annotator="  ")
        assert store.votes() == []
        match.vote(store, "a", annotator="ana", rationale="left is right",
                   dimensions={"correctness": "a", "style": "tie", "safety": None})
        [row] = store.votes()
    # The left pane showed dpo = response_b: the clicks and verdicts are stored in model terms.
    assert (row["vote"], row["dimensions"], row["rationale"]) == ("b", {"correctness": "b", "style": "tie"},
                                                                  "left is right")


def test_per_side_tags_follow_the_answers_not_the_screen(tmp_path, capsys):
    from tinyalign import prefs

    db = tmp_path / "prefs.sqlite"
    with VoteStore(db) as store:
        match = answered(Match(model_a="sft", model_b="dpo", anonymous=True, swapped=True))  # dpo on the left
        with pytest.raises(UserError, match="unknown tag 'rude'"):
            match.vote(store, "b", annotator="ana", side_tags={"a": ["rude"]})
        match.vote(store, "b", annotator="ana", tags=["format"], side_tags={"a": ["wrong", "verbose"], "b": []})
        with pytest.raises(UserError, match="side_tags"):
            store.record(conversation=[{"role": "user", "content": "hi"}], response_a="x", response_b="y",
                         model_a="sft", model_b="dpo", vote="a", side_tags={"left": ["wrong"]})
        [row] = store.votes()
    # The left answer was dpo's, response_b: its tags are stored on "b"; the vote's own tags stay as they were.
    assert row["settings"]["side_tags"] == {"b": ["wrong", "verbose"]} and row["tags"] == ["format"]
    prefs.main(["stats", str(db)])
    assert "by checkpoint and tag: dpo wrong 1, dpo verbose 1" in capsys.readouterr().out


def test_undo_after_a_blind_reveal_revotes_with_names_visible(tmp_path):
    with VoteStore(tmp_path / "prefs.sqlite") as store:
        match = answered(Match(model_a="sft", model_b="dpo", anonymous=True))
        assert not match.names_visible
        first = match.vote(store, "b", annotator="ana")
        with pytest.raises(UserError, match="not in .* as a vote of bo"):
            match.undo(store, annotator="bo")  # only one's own vote
        assert match.undo(store, annotator="ana") == first
        assert match.can_vote and match.names_visible and not match.can_continue  # revealed stays revealed
        second = match.vote(store, "a", annotator="ana")
        rows = store.votes()
    assert [r["id"] for r in rows] == [first, second] and rows[0]["superseded"] and not rows[1]["superseded"]
    assert rows[1]["settings"]["names_visible"] is True and rows[1]["settings"]["revote_of"] == first
    assert "names_visible" not in rows[0]["settings"]


def test_prompt_queue_gives_each_annotator_the_next_unvoted_prompt(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "2+2?", "reference": "4"}\n\n{"id": "colour", "question": "A colour?"}\n'
                    '{"prompt": "Hi", "answer": 7}\n')
    queue = prompts.load(path)
    assert queue == [prompts.Prompt("1", "2+2?", "4"), prompts.Prompt("colour", "A colour?", ""),
                     prompts.Prompt("4", "Hi", "7")]
    votes = [{"prompt_id": "1", "annotator": "ana", "model_a": "sft", "model_b": "dpo"},
             {"prompt_id": "colour", "annotator": "bo", "model_a": "dpo", "model_b": "sft"},
             {"prompt_id": None, "annotator": "ana", "model_a": "sft", "model_b": "dpo"}]
    pair = prompts.pair_key("dpo", "sft")
    assert prompts.next_prompt(queue, prompts.voted(votes, "ana", pair), set()).id == "colour"
    assert prompts.next_prompt(queue, prompts.voted(votes, "ana", pair), {"colour"}).id == "4"
    assert prompts.next_prompt(queue, prompts.voted(votes, "ana", pair), {"colour", "4"}).id == "colour"
    assert prompts.next_prompt(queue, {"1", "colour", "4"}, set()) is None
    assert prompts.next_prompt(queue, prompts.voted(votes, "ana", ("base", "sft")), set()).id == "1"  # other pair
    assert prompts.progress(queue, votes, "ana", pair) == \
        "1 / 3 prompts voted by you, 2 / 3 by anyone for dpo vs sft"


def test_a_line_with_chosen_and_rejected_is_a_gold_item(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "2+2?"}\n{"id": "g1", "prompt": "3+3?", "chosen": "6", "rejected": "7"}\n')
    assert prompts.load(path) == [prompts.Prompt("1", "2+2?"), prompts.Prompt("g1", "3+3?", gold=("6", "7"))]


@pytest.mark.slow
def test_a_recipe_queues_its_held_out_split_with_reference_answers(tmp_path):
    from tinyalign.config import recipe
    from tinyalign.data import loading as data

    path = tmp_path / "math.yaml"
    path.write_text("method: grpo\nmodel: {name: tiny:qwen2-1m}\nrewards: [{name: exact_match}]\n"
                    "output_dir: runs/math\ndata: {source: tiny:addition, split: train, test_split: test, prompt: 'Add {question}',"
                    " answer: '{answer}', system: 'Answer with a number.'}\n")
    queue = prompts.load(path)
    held_out = data.eval_rows(recipe.load(path).data)
    assert len(queue) == len(held_out) == 500  # the held-out split, not the training one
    assert queue[0] == prompts.Prompt("tiny:addition#0", f"Add {held_out[0]['question']}",
                                      held_out[0]["answer"], "Answer with a number.")
    assert queue[7].id == "tiny:addition#7" and prompts.load(path)[7] == queue[7]  # the same ids every time
    assert len({p.id for p in queue}) == len(queue)
    path.write_text(path.read_text().replace("rewards: [{name: exact_match}]", "rewards: []"))
    with pytest.raises(UserError, match=f"--prompts {path}: a GRPO recipe needs `rewards`"):
        prompts.load(path)
    with pytest.raises(UserError, match="no such recipe"):
        prompts.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, named", [
    ('{"prompt": "a"}\n{"prompt": "b", "id": 1}\n', "id '1' is used twice"),
    ('{"prompt": ""}\n', 'line 1: needs a non-empty "prompt"'),
    ("not json\n", "line 1: not JSON"),
    ("\n", "no prompts in it"),
    ('{"prompt": "2+2?", "chosen": "4"}\n', 'line 1: a gold item needs both a "chosen"'),
    ('{"prompt": "a"}\n{"prompt": "2+2?", "chosen": "4", "rejected": " 4"}\n', "line 2: the gold item's chosen and "
                                                                              "rejected answers are the same"),
])
def test_a_bad_prompts_file_is_refused_naming_the_line(tmp_path, text, named):
    path = tmp_path / "prompts.jsonl"
    path.write_text(text)
    with pytest.raises(UserError, match=named):
        prompts.load(path)


def test_a_prompts_file_not_in_utf8_is_named(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes('{"prompt": "caf\xe9?"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="prompts.jsonl is not UTF-8 text"):
        prompts.load(path)


def test_dimensions_from_a_list_or_a_yaml_file(tmp_path):
    assert parse_dimensions("correctness, helpfulness,style") == {"correctness": "", "helpfulness": "",
                                                                  "style": ""}
    described = tmp_path / "dimensions.yaml"
    described.write_text("correctness: is the answer right?\nstyle:\n")
    assert parse_dimensions(str(described)) == {"correctness": "is the answer right?", "style": ""}
    with pytest.raises(UserError, match="'tone!' is not a dimension name"):
        parse_dimensions("correctness,tone!")
    with pytest.raises(UserError, match="no such file"):
        parse_dimensions(str(tmp_path / "missing.yaml"))
    assert json.dumps(parse_dimensions(None)) == "{}"


# ---------------------------------------------------------------- bad-case review

COMPLETIONS = [
    {"step": 1, "prompt": [{"role": "user", "content": "2+2?"}], "completion": "<think>4</think> 4",
     "rewards": {"think_format": 1.0, "math_accuracy": 1.0}},
    {"step": 2, "prompt": [{"role": "user", "content": "3+5?"}], "completion": "<think>hmm</think> 9",
     "rewards": {"think_format": 1.0, "math_accuracy": 0.0}},  # the classic hack: format yes, answer no
    {"step": 3, "prompt": [{"role": "user", "content": "1+1?"}], "completion": "2",
     "rewards": {"think_format": 0.0, "math_accuracy": 1.0}},
]


def test_review_filters_by_step_reward_and_disagreement(tmp_path):
    from tinyalign.app import review

    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in COMPLETIONS) + '{"step": 4, "pro')
    run, rows = review.load(tmp_path)
    assert run == tmp_path.name and [r["line"] for r in rows] == [1, 2, 3]  # a cut-off last line is skipped
    assert [r["step"] for r in review.select(rows, disagreeing=True)] == [2, 3]
    assert [r["step"] for r in review.select(rows, reward="math_accuracy", scores=(None, 0.5))] == [2]
    assert [r["step"] for r in review.select(rows, steps=(2, None), reward="think_format", scores=(1, 1))] == [2]
    with pytest.raises(UserError, match="no completions.jsonl there"):
        review.load(tmp_path / "nope")


def test_a_good_completion_becomes_an_sft_row_and_a_corrected_one_a_dpo_pair(tmp_path, capsys):
    from tinyalign import prefs
    from tinyalign.app import review

    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in COMPLETIONS))
    run, rows = review.load(tmp_path)
    db, sft, pairs = tmp_path / "prefs.sqlite", tmp_path / "sft.jsonl", tmp_path / "pairs.jsonl"
    with prefs.VoteStore(db) as store:
        review.mark(store, run, rows[0], "good", annotator="ana")
        review.mark(store, run, rows[0], "good", annotator="bo")  # the same row twice: one SFT row
        review.mark(store, run, rows[1], "bad", annotator="ana", correction="<think>3+5=8</think> 8")
        with pytest.raises(UserError, match="write the corrected answer first"):
            review.mark(store, run, rows[2], "bad", annotator="ana")
        assert len(store.votes()) == 3

    prefs.main(["export", str(db), "--out", str(sft), "--sft"])
    assert "wrote 1 SFT rows" in capsys.readouterr().out
    assert [json.loads(line) for line in sft.read_text().splitlines()] == [
        {"prompt": [{"role": "user", "content": "2+2?"}],
         "completion": [{"role": "assistant", "content": "<think>4</think> 4"}]}]
    prefs.main(["export", str(db), "--out", str(pairs)])
    assert "2 completion marked good" in capsys.readouterr().out  # never a pair with an empty rejected
    assert [json.loads(line)["chosen"][0]["content"] for line in pairs.read_text().splitlines()] == [
        "<think>3+5=8</think> 8"]
    assert prefs.leaderboard(db) == []  # a review is no checkpoint

    with pytest.raises(SystemExit) as exit_:
        prefs.main(["export", str(db), "--out", str(sft), "--sft", "--dimension", "correctness"])
    assert exit_.value.code == 2 and "drop --dimension" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prefs.main(["export", str(db), "--out", str(pairs), "--sft"])  # a pairs file is not an SFT file
    assert "is not a file this command writes" in capsys.readouterr().err and pairs.read_text().count("\n") == 1
    with prefs.VoteStore(tmp_path / "empty.sqlite") as store:
        store.record(conversation=[{"role": "user", "content": "hi"}], response_a="a", response_b="b",
                     model_a="x", model_b="y", vote="a", annotator="ana")
    with pytest.raises(SystemExit):
        prefs.main(["export", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "none.jsonl"), "--sft"])
    assert "no completion marked good" in capsys.readouterr().err and not (tmp_path / "none.jsonl").exists()


def test_the_tradeoff_chart_shows_one_checkpoint_better_at_correctness_and_worse_at_style(tmp_path):
    from tinyalign import prefs
    from tinyalign.app import admin

    with prefs.VoteStore(tmp_path / "prefs.sqlite") as store:
        for n in range(6):  # sft is right, dpo writes nicer: every vote says so on both dimensions
            store.record(conversation=[{"role": "user", "content": f"{n}+1?"}], response_a=str(n + 1),
                         response_b="a lovely answer", model_a="sft", model_b="dpo", vote="a", annotator="ana",
                         dimensions={"correctness": "a", "style": "b"})
        tables = admin.dimension_ratings(store, ["correctness", "style", "helpfulness"])
    frame = admin.tradeoff_frame(tables, ["correctness", "style", "helpfulness"])
    rating = {(row.checkpoint, row.dimension): row.rating for row in frame.itertuples()}
    assert set(rating) == {(m, d) for m in ("sft", "dpo") for d in ("correctness", "style")}  # unjudged: no point
    assert rating["sft", "correctness"] > rating["dpo", "correctness"]
    assert rating["sft", "style"] < rating["dpo", "style"]
    assert admin.dimension_rows(tables, ["correctness", "style"]) == [
        [m, f"{rating[m, 'correctness']} (6)", f"{rating[m, 'style']} (6)"] for m in ("dpo", "sft")]
    assert admin.tradeoff_frame({}, ["style"]).empty and admin.tradeoff_figure(admin.tradeoff_frame({}, [])) is None
    bars = admin.tradeoff_figure(frame).axes[0].patches  # grouped: sft's bars, then dpo's... sorted by name
    assert [round(bar.get_y() + bar.get_height()) for bar in bars] == [
        rating[m, d] for m in ("dpo", "sft") for d in ("correctness", "style")]


def test_answers_made_ahead_are_taken_only_for_the_request_they_were_made_for():
    ahead = prompts.Ahead()
    ahead.start("tab1", ("q2", "sft", "dpo", 0.0), lambda: ("4", "5"))
    assert ahead.take("tab2", ("q2", "sft", "dpo", 0.0)) is None  # another tab's guess is not this one's
    assert ahead.take("tab1", ("q2", "sft", "dpo", 0.7)) is None  # other settings: a miss, and it is gone
    assert ahead.take("tab1", ("q2", "sft", "dpo", 0.0)) is None
    ahead.start("tab1", ("q2",), lambda: ("4", "5"))
    assert ahead.take("tab1", ("q2",)) == ("4", "5")
    assert ahead.take("tab1", ("q2",)) is None  # taken once

    def broken():
        raise RuntimeError("out of memory")

    ahead.start("tab1", ("q3",), broken)
    assert ahead.take("tab1", ("q3",)) is None  # generated as usual instead


def test_gold_items_from_their_own_file_are_spread_through_the_queue(tmp_path):
    queue = [prompts.Prompt(str(n), f"{n}+{n}?") for n in range(1, 7)]
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "g1", "prompt": "1+2?", "chosen": "3", "rejected": "4"}\n'
                    '{"id": "g2", "prompt": "2+5?", "chosen": "7", "rejected": "six"}\n')
    mixed = prompts.mix_gold(queue, prompts.load(path), path)
    assert [p.id for p in mixed] == ["1", "2", "g1", "3", "4", "g2", "5", "6"]

    path.write_text('{"id": "1", "prompt": "1+2?", "chosen": "3", "rejected": "4"}\n')
    with pytest.raises(UserError, match="id '1' is also a prompt's id"):
        prompts.mix_gold(queue, prompts.load(path), path)
    path.write_text('{"id": "g1", "prompt": "1+2?"}\n')
    with pytest.raises(UserError, match="'g1' has no \"chosen\" and \"rejected\""):
        prompts.mix_gold(queue, prompts.load(path), path)
