"""The Arena tab's handlers in-process, without a browser (test_app_browser.py drives the same page in
Chromium where it is installed): what a send, a vote, an undo and the prompt queue put on the page and
in the vote store. The "model" answers by rule, so every figure is exact."""

from types import SimpleNamespace

import gradio as gr
import pytest

from tinyalign.app.arena_tab import ANONYMOUS, PICK, ArenaTab
from tinyalign.app.ballots import Ballots
from tinyalign.app.prompts import Prompt
from tinyalign.app.queue_tab import QueueControls
from tinyalign.votes import VoteStore

SETTINGS = (0.0, 16, "")  # temperature, max new tokens, system prompt


class RuleEngine:
    """Three checkpoints: "right" answers a sum correctly, "wrong" one too high, "shy" with a question mark;
    answers stream in two steps."""
    names = ["right", "wrong", "shy"]
    checkpoints = {"right": "runs/right", "wrong": None, "shy": None}
    base_model = "tiny"
    defaults = {"temperature": 0.0, "max_new_tokens": 16, "system": ""}

    def stream(self, conversations, models, temperature, max_new_tokens):
        question = conversations[0][-1]["content"]
        total = sum(int(n) for n in question.rstrip("?").split()[-1].split("+"))
        answers = ["?" if model == "shy" else str(total + (model == "wrong")) for model in models]
        yield ["", ""]
        yield answers


def page(tmp_path, prompts=None):
    with gr.Blocks() as demo:
        arena = ArenaTab(RuleEngine(), Ballots(tmp_path / "prefs.sqlite"), {"correctness": ""},
                         queued=bool(prompts))
        if prompts:
            QueueControls(arena, prompts)
        arena.wire(demo)
    return arena


def last(generator):
    out = None
    for out in generator:
        pass
    return out


def request(name=None):
    return SimpleNamespace(username=name, session_hash="tab-1")


def shown(out, arena):
    """The two panes' last answers, as displayed."""
    return tuple("".join(part["text"] for part in out[pane].value[-1]["content"])
                 for pane in (arena.chat_left, arena.chat_right))


def test_a_message_is_answered_by_both_checkpoints_and_the_vote_lands_in_the_store(tmp_path):
    arena = page(tmp_path)
    out = last(arena.on_send("What is 2+2?", None, PICK, "right", "wrong", False, *SETTINGS))
    assert shown(out, arena) == ("4", "5")
    assert "vote (keys 1-4)" in out[arena.status]
    match = out[arena.match_state]

    out = arena.on_vote("b")(request(), match, "ana", "4, exactly", [], ["wrong"], [], "B is off by one", "a")
    assert out[arena.status].startswith("Vote #1 recorded: B is better.")
    with VoteStore(tmp_path / "prefs.sqlite", create=False) as store:
        [row] = store.votes()
    assert (row["model_a"], row["model_b"], row["vote"], row["edited"], row["annotator"]) == \
        ("right", "wrong", "b", "4, exactly", "ana")
    assert row["dimensions"] == {"correctness": "a"} and row["settings"]["side_tags"] == {"a": ["wrong"]}
    assert row["run_dir_a"] == "runs/right" and row["run_dir_b"] is None

    out = arena.on_undo(match, "ana", request())
    assert "Vote #1 undone" in out[arena.status]
    with VoteStore(tmp_path / "prefs.sqlite", create=False) as store:
        assert store.votes(current=True) == []


def test_a_blind_match_names_the_checkpoints_only_after_the_vote(tmp_path):
    arena = page(tmp_path)
    out = last(arena.on_send("What is 1+1?", None, ANONYMOUS, "right", "wrong", False, *SETTINGS))
    assert (out[arena.chat_left].label, out[arena.chat_right].label) == ("A", "B")
    match = out[arena.match_state]
    out = arena.on_vote("a")(request(), match, "ana", "", [], [], [], "", None)
    assert f"A was **{match.left}**, B was **{match.right}**" in out[arena.status]
    assert out[arena.chat_left].label == f"A · {match.left}"


def test_the_queue_serves_each_prompt_once_per_annotator_and_counts(tmp_path):
    prompts = [Prompt("q1", "What is 2+3?", "5"), Prompt("q2", "What is 4+4?", "8")]
    arena = page(tmp_path, prompts)
    queue = arena.queue
    inputs = ("ana", PICK, "right", "wrong", *SETTINGS)

    out = last(queue.on_next(None, [], *inputs, request()))
    match = out[arena.match_state]
    assert match.prompt_id == "q1" and shown(out, arena) == ("5", "6") and out[arena.reference] == "5"
    out = arena.on_vote("a")(request(), match, "ana", "", [], [], [], "", None)
    assert out[arena.progress].startswith("1 / 2 prompts voted by you")

    out = last(queue.on_next(match, [], *inputs, request()))
    assert out[arena.match_state].prompt_id == "q2" and shown(out, arena) == ("8", "9")
    arena.on_vote("a")(request(), out[arena.match_state], "ana", "", [], [], [], "", None)
    out = last(queue.on_next(out[arena.match_state], [], *inputs, request()))
    assert out[arena.status] == "Every prompt has your vote. Thank you!"

    # Another annotator starts from the first prompt; without a name nobody gets one.
    assert last(queue.on_next(None, [], "bo", *inputs[1:], request()))[arena.match_state].prompt_id == "q1"
    with pytest.raises(gr.Error, match="who is voting"):
        last(queue.on_next(None, [], "", *inputs[1:], request()))


def handlers(demo) -> dict:
    return {f.name: f.fn for f in demo.fns.values()}


def test_the_leaderboard_and_export_tabs_show_and_write_what_the_store_holds(tmp_path):
    from tinyalign.app import admin

    db = tmp_path / "prefs.sqlite"
    with VoteStore(db) as store:
        for winner, annotator in (("a", "ana"), ("a", "bo"), ("b", "cy")):
            store.record(conversation=[{"role": "user", "content": "What is 2+2?"}], response_a="4",
                         response_b="5", model_a="right", model_b="wrong", vote=winner, annotator=annotator,
                         prompt_id="q1")
    with gr.Blocks() as demo:
        ballots = Ballots(db)
        admin.build_leaderboard_tab(ballots, [])
        admin.build_export_tab(ballots, tmp_path / "pairs.jsonl", [])
    fns = handlers(demo)

    overview, table, _, _, annotators = fns["show"]()
    assert overview.startswith("**3** votes.")
    assert "Agreement: 1 of 3 annotator pairs preferred the same answer" in overview
    assert [row[1] for row in table] == ["right", "wrong"]
    assert annotators == [["ana", 1, "-", "1/2 (50%)"], ["bo", 1, "-", "1/2 (50%)"], ["cy", 1, "-", "0/2 (0%)"]]

    status, written = fns["on_export"]("overall")
    assert status.startswith("Wrote **2** DPO pairs from **3** votes") and written == str(tmp_path / "pairs.jsonl")
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 2


def test_a_gold_item_in_the_queue_looks_like_any_pair_and_measures_the_annotator(tmp_path):
    gold = Prompt("g1", "What is 7+7?", gold=("14", "15, I think"))
    prompts = [Prompt("q1", "What is 2+3?"), gold, Prompt("q2", "What is 4+4?")]
    arena = page(tmp_path, prompts)
    queue = arena.queue
    inputs = ("ana", PICK, "right", "wrong", *SETTINGS)

    out = last(queue.on_next(None, [], *inputs, request()))
    arena.on_vote("a")(request(), out[arena.match_state], "ana", "", [], [], [], "", None)
    out = last(queue.on_next(out[arena.match_state], [], *inputs, request()))
    match = out[arena.match_state]
    left, right = shown(out, arena)
    assert match.prompt_id == "g1" and {left, right} == {"14", "15, I think"}
    assert (out[arena.chat_left].label, out[arena.chat_right].label) == ("A", "B")
    assert out[arena.status] == out[arena.status].replace("gold", "")  # nothing on the page says "gold"
    assert out[arena.progress] == "1 / 3 prompts voted by you, 1 / 3 by anyone for right vs wrong"

    clicked = "a" if left == "14" else "b"  # the side showing the known better answer
    out = arena.on_vote(clicked)(request(), match, "ana", "", [], [], [], "", None)
    assert "gold" not in out[arena.status] and out[arena.progress].startswith("2 / 3 prompts voted by you")
    with VoteStore(tmp_path / "prefs.sqlite", create=False) as store:
        row = store.votes()[-1]
    assert (row["vote"], row["response_a"], row["settings"]["gold"], row["prompt_id"]) == ("a", "14", True, "g1")

    # Asked once per annotator, whichever pair of checkpoints comes next: a new pair starts at q1, then q2.
    out = last(queue.on_next(match, [], "ana", PICK, "right", "shy", *SETTINGS, request()))
    assert out[arena.match_state].prompt_id == "q1"
    arena.on_vote("a")(request(), out[arena.match_state], "ana", "", [], [], [], "", None)
    out = last(queue.on_next(out[arena.match_state], [], "ana", PICK, "right", "shy", *SETTINGS, request()))
    assert out[arena.match_state].prompt_id == "q2"
