"""The arena in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

`python app.py` serves two tiny adapters ("AAA", "BBB") on 127.0.0.1; the browser chats, votes, writes
a better answer, exports; the vote store and the exported JSONL are read back from disk. A second,
in-process app whose "model" emits HTML checks that model output is shown as text, never run.

Chromium: `apt-get install -y chromium` (the tests are skipped, saying so, when it is missing).
"""

import json
import re
import time
from pathlib import Path

import pytest
from helpers_app import free_port, read_votes, start_app, trained_adapters
from playwright.sync_api import expect

from tinyalign.config.recipe import builtin

CHROMIUM = Path("/usr/bin/chromium")
# What works in this sandbox (see the env notes): no sandbox/GPU, and none of Chromium's background
# connections, which a closed network refuses many at a time.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# expect() waits 5 s by default, not the page's timeout; a busy machine can take longer to answer.
expect.set_options(timeout=30_000)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    """`python app.py --adapter aaa=... --adapter bbb=... --db ...` on a free port."""
    runs = trained_adapters()
    db = tmp_path_factory.mktemp("arena") / "prefs.sqlite"
    app = start_app({"aaa": runs["aaa"], "bbb": runs["bbb"]}, db)
    yield app, db
    app.stop()


# ---------------------------------------------------------------- what an annotator does


def pick(page, label, name):
    # Each dropdown renders its own option list; wait for this one to close so the
    # next pick never sees two lists offering the same name.
    page.get_by_label(label).click()
    page.get_by_role("option", name=name, exact=True).click()
    expect(page.get_by_role("option")).to_have_count(0)


PICK_MODE = "pick two"


def ask(page, text):
    """Send a message and wait until both answers are complete (the vote buttons come on)."""
    page.fill("#message textarea", text)
    page.click("#send")
    page.wait_for_selector("#vote-a:not([disabled])")


def pane(page, side):
    """The last answer shown in the left or right pane, as the annotator reads it."""
    return page.locator(f"#pane-{side} [data-testid='bot']").last.inner_text().strip()


def vote(page, button, *, edited=None, tags=(), annotator=None):
    if edited is not None:
        page.fill("#edited textarea", edited)
    for tag in tags:
        page.locator("#tags").get_by_label(tag).check()
    if annotator is not None:
        page.get_by_label("Annotator").fill(annotator)
    elif not page.get_by_label("Annotator").input_value():
        page.get_by_label("Annotator").fill("tester")  # asked once; a vote never goes in as "anonymous"
    page.click(f"#vote-{button}")
    page.wait_for_selector("#status:has-text('recorded')")
    return page.inner_text("#status")


# ---------------------------------------------------------------- tests


def test_chat_vote_edit_and_export_from_the_browser(arena, page):
    app, db = arena
    page.goto(app.url)
    pick(page, "Checkpoint A (left)", "aaa")
    pick(page, "Checkpoint B (right)", "bbb")
    assert page.is_disabled("#vote-a")  # nothing to vote on yet

    ask(page, "Say something")
    left, right = pane(page, "left"), pane(page, "right")
    assert left.startswith("AAA") and set(left) == {"A"}
    assert right.startswith("BBB") and set(right) == {"B"}
    page.locator("#tags-left").get_by_label("wrong").check()  # a tag on one answer, not on the vote
    status = vote(page, "b", edited="Something.", tags=["verbose"], annotator="ana")
    assert "Vote #1 recorded" in status
    # The store has the row as soon as the page says so; one vote per turn.
    [row] = read_votes(db)
    assert (row["model_a"], row["model_b"], row["vote"], row["annotator"]) == ("aaa", "bbb", "b", "ana")
    assert (row["response_a"], row["response_b"], row["edited"]) == (left, right, "Something.")
    assert json.loads(row["tags"]) == ["verbose"]
    assert json.loads(row["settings"])["side_tags"] == {"a": ["wrong"]}
    assert json.loads(row["conversation"]) == [{"role": "user", "content": "Say something"}]
    assert page.is_disabled("#vote-a") and page.is_disabled("#vote-b")
    assert page.input_value("#edited textarea") == ""

    # A second turn, asked for explicitly: each pane continues its own conversation; this vote is A over B.
    page.get_by_label("Next message continues this conversation").check()
    ask(page, "More?")
    assert vote(page, "a").startswith("Vote #2 recorded")
    second = read_votes(db)[1]
    assert json.loads(second["conversation"])[1] == {"role": "assistant", "content": left}
    assert second["annotator"] == "ana"  # the name stays filled in

    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#leaderboard")).to_contain_text("aaa")
    expect(page.locator("#leaderboard")).to_contain_text("bbb")

    page.get_by_role("tab", name="Export").click()
    page.click("#export")
    expect(page.locator("#export-status")).to_contain_text("Wrote 2 DPO pairs from 2 votes")
    exported = [json.loads(line) for line in db.with_suffix(".pairs.jsonl").read_text().splitlines()]
    assert exported[0] == {"prompt": [{"role": "user", "content": "Say something"}],
                           "chosen": [{"role": "assistant", "content": "Something."}],
                           "rejected": [{"role": "assistant", "content": left}]}
    assert exported[1]["chosen"][0]["content"] == left and exported[1]["rejected"][0]["content"] == second["response_b"]


def test_anonymous_mode_reveals_names_only_after_the_vote(arena, page):
    app, db = arena
    page.goto(app.url)
    page.get_by_label("anonymous").check()
    ask(page, "Who are you?")
    labels = [page.locator(f"#pane-{side} [data-testid='block-label']").inner_text() for side in ("left", "right")]
    assert labels == ["A", "B"]
    left_answer = pane(page, "left")
    status = vote(page, "a")
    row = read_votes(db)[-1]
    left_model = row["model_b"] if row["swapped"] else row["model_a"]
    assert f"A was **{left_model}**" not in status and f"A was {left_model}" in status
    assert row["vote"] == ("b" if row["swapped"] else "a")  # the left pane won, whichever model it was
    assert row[f"response_{'b' if row['swapped'] else 'a'}"] == left_answer
    assert json.loads(row["settings"])["anonymous"] is True
    label = page.locator("#pane-left [data-testid='block-label']").inner_text()
    assert label == f"A · {left_model}"
    assert page.is_disabled("#message textarea")  # a blind match ends with its vote


# ---------------------------------------------------------------- model output is text, never code

PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>**not bold**'


class ScriptedEngine:
    """A stand-in model whose checkpoints answer fixed texts, a few characters per streamed step.

    The real engine's path to the browser is covered above; here only what the page does with the
    text matters, so the text is fixed rather than coaxed out of a tiny model. "{n}" in an answer
    becomes the number of the generate call, so a regenerated answer differs from the first.
    """

    base_model = "scripted"
    defaults = {"temperature": 0.0, "max_new_tokens": 64}

    def __init__(self, answers):
        self.answers = answers
        self.checkpoints = {name: f"/runs/{name}" for name in answers}
        self.calls = 0

    @property
    def names(self):
        return list(self.checkpoints)

    def stream(self, conversations, checkpoints, **settings):
        self.calls += 1
        texts = [self.answers[name].replace("{n}", str(self.calls)) for name in checkpoints]
        for end in range(0, max(map(len, texts)) + 8, 8):
            yield [text[:end] for text in texts]


def serve(engine, folder, **options):
    """The page for `engine`, in this process, on a free port: (url, db, stop)."""
    from tinyalign.app.ballots import Ballots
    from tinyalign.app.ui import build, launch

    demo = build(engine, Ballots(folder / "p.sqlite"), folder / "pairs.jsonl", **options)
    port = free_port()
    launch(demo, port=port, block=False)
    return f"http://127.0.0.1:{port}/", folder / "p.sqlite", demo.close


@pytest.fixture
def hostile_app(tmp_path):
    url, db, stop = serve(ScriptedEngine({"evil": PAYLOAD, "plain": "fine <3 & done"}), tmp_path)
    yield url, db
    stop()


def test_model_output_with_html_is_shown_as_text_and_never_runs(hostile_app, page):
    url, db = hostile_app
    page.goto(url)
    ask(page, 'hi <img src=y onerror="window.__xss=3">')
    assert page.evaluate("window.__xss") is None
    assert pane(page, "left") == PAYLOAD  # every character visible, no markdown applied
    assert pane(page, "right") == "fine <3 & done"
    assert page.locator("#pane-left img, #pane-left script, #pane-right img, #pane-left strong").count() == 0
    assert 'hi <img src=y onerror="window.__xss=3">' in page.inner_text("#pane-left")
    vote(page, "a")
    assert page.evaluate("window.__xss") is None
    assert read_votes(db)[0]["response_a"] == PAYLOAD  # stored as generated, not escaped


def test_regenerate_replaces_the_answers_and_new_round_starts_over(tmp_path, page):
    url, db, stop = serve(ScriptedEngine({"one": "first model, call {n}", "two": "second model, call {n}"}), tmp_path)
    try:
        page.goto(url)
        ask(page, "hi")
        assert pane(page, "left") == "first model, call 1"
        page.click("#regenerate")
        expect(page.locator("#pane-left [data-testid='bot']")).to_have_text("first model, call 2")
        page.wait_for_selector("#vote-a:not([disabled])")
        assert page.locator("#pane-right [data-testid='bot']").count() == 1  # replaced, not appended
        vote(page, "tie")
        assert read_votes(db)[0]["response_b"] == "second model, call 2"
        assert page.is_disabled("#vote-tie")  # one vote per turn

        page.click("#clear")
        expect(page.locator("#pane-left [data-testid='bot']")).to_have_count(0)
        assert page.is_disabled("#vote-a") and page.is_disabled("#regenerate")
        assert page.is_enabled("#message textarea")
    finally:
        stop()


def test_an_unvoted_edit_and_tags_are_cleared_with_their_turn(tmp_path, page):
    """A better answer and tags belong to the turn they were written for: every way a turn ends without
    its vote clears them, so they can never be stored with the next, unrelated vote."""
    url, db, stop = serve(ScriptedEngine({"one": "first {n}", "two": "second {n}"}), tmp_path)
    edit, wrong = page.locator("#edited textarea"), page.locator("#tags").get_by_label("wrong")
    verbose_right = page.locator("#tags-right").get_by_label("verbose")

    def draft():
        edit.fill("a better answer to another question")
        wrong.check()
        verbose_right.check()

    def cleared(how):
        expect(edit, how).to_have_value("")
        expect(wrong, how).not_to_be_checked()
        expect(verbose_right, how).not_to_be_checked()

    try:
        page.goto(url)
        ways = {
            "new round": lambda: page.click("#clear"),
            "a new turn": lambda: ask(page, "and another thing"),
            "the left pane's trash icon": lambda: page.click("#pane-left button[aria-label='Clear']"),
            "switching mode": lambda: page.get_by_label("anonymous").check(),
            "switching checkpoints": lambda: pick(page, "Checkpoint B (right)", "one"),
        }
        for how, end_turn in ways.items():
            if how == "switching checkpoints":
                page.get_by_label(PICK_MODE).check()
            if not how.startswith("switching"):  # mode and checkpoints are fixed mid-conversation
                ask(page, f"before {how}")
            draft()
            end_turn()
            cleared(how)
        ask(page, "an unrelated question")
        vote(page, "a")
        row = read_votes(db)[-1]
        assert json.loads(row["conversation"])[-1]["content"] == "an unrelated question"
        assert (row["edited"], json.loads(row["tags"])) == (None, [])
        assert "side_tags" not in json.loads(row["settings"])
    finally:
        stop()


def test_paths_are_shown_as_written(tmp_path, page):
    folder = tmp_path / "votes <b>&amp; co"
    folder.mkdir()
    url, db, stop = serve(ScriptedEngine({"one": "1", "two": "2"}), folder)
    try:
        page.goto(url)
        expect(page.get_by_text(f"votes go to {db}")).to_be_visible()
        page.get_by_role("tab", name="Export").click()
        expect(page.get_by_text(str(folder / "pairs.jsonl"))).to_be_visible()
    finally:
        stop()


def test_a_labeling_session_from_the_keyboard(tmp_path, page):
    """--prompts and --dimensions: the next prompt comes with a key, both answer, the vote (with a
    per-dimension verdict and a rationale) goes in with the prompt's id; undo, skip, progress, identity."""
    from tinyalign.app.prompts import Prompt

    queue = [Prompt("q1", "What is 2+2?", "4"), Prompt("q2", "Name a colour", "red"), Prompt("q3", "Say hi")]
    url, db, stop = serve(ScriptedEngine({"one": "first {n}", "two": "second {n}"}), tmp_path,
                          dimensions={"correctness": "is it right?", "style": ""}, prompt_queue=queue)
    message_focused = "document.activeElement === document.querySelector('#message textarea')"
    try:
        page.goto(url)
        page.click("#next")
        expect(page.get_by_text("who is voting?").first).to_be_visible()  # never silently "anonymous"
        assert not db.exists()  # no vote, no store
        page.get_by_label("Annotator").fill("ana")
        page.keyboard.press("Alt+N")
        page.wait_for_selector("#vote-a:not([disabled])")
        assert pane(page, "left") == "first 1"
        assert "What is 2+2?" in page.inner_text("#pane-left")
        page.wait_for_function(message_focused)  # the cursor is back in the message box
        expect(page.locator("#reference")).not_to_be_visible()  # the reference only on request
        page.get_by_text("Reference answer").click()
        expect(page.locator("#reference")).to_have_text("4")

        page.locator("#dimension-correctness").get_by_label("A", exact=True).check()
        page.fill("#rationale textarea", "B is prettier, A is right")
        page.keyboard.press("Alt+2")
        expect(page.locator("#status")).to_contain_text("Vote #1 recorded: B is better")
        expect(page.locator("#vote-b")).to_have_class(re.compile(r"\bprimary\b"))  # the chosen vote shows
        expect(page.locator("#vote-a")).not_to_have_class(re.compile(r"\bprimary\b"))
        expect(page.locator("#progress")).to_contain_text("1 / 3 prompts voted by you")
        [row] = read_votes(db)
        assert (row["prompt_id"], row["vote"], row["annotator"]) == ("q1", "b", "ana")
        assert json.loads(row["dimensions"]) == {"correctness": "a"}
        assert row["rationale"] == "B is prettier, A is right"

        page.keyboard.press("Alt+Z")  # undo: the row stays, marked superseded; the turn is open again
        expect(page.locator("#status")).to_contain_text("Vote #1 undone")
        page.wait_for_selector("#vote-a:not([disabled])")
        page.keyboard.press("Alt+1")
        expect(page.locator("#status")).to_contain_text("Vote #2 recorded: A is better")
        first, second = read_votes(db)
        assert first["superseded"] and not second["superseded"]
        assert (second["prompt_id"], second["vote"], json.loads(second["settings"])["revote_of"]) == ("q1", "a", 1)
        assert json.loads(second["dimensions"]) == {}  # cleared with the undone vote's turn

        page.keyboard.press("Alt+N")
        expect(page.locator("#pane-left")).to_contain_text("Name a colour")
        page.click("#skip")
        expect(page.locator("#pane-left")).to_contain_text("Say hi")
        page.wait_for_selector("#vote-a:not([disabled])")
        page.locator("#dimension-style").get_by_label("B", exact=True).check()
        page.keyboard.press("Alt+3")
        expect(page.locator("#status")).to_contain_text("recorded: Tie")
        page.keyboard.press("Alt+N")
        expect(page.locator("#pane-left")).to_contain_text("Name a colour")  # the skipped one comes back
        expect(page.locator("#progress")).to_contain_text("2 / 3 prompts voted by you")

        # The Leaderboard: the style verdict (B = two) rates the checkpoints on that dimension apart.
        page.get_by_role("tab", name="Leaderboard").click()
        expect(page.locator("#leaderboard-summary")).to_contain_text("Position bias: the left answer won 1 of 1")
        dimensions = page.locator("#leaderboard-dimensions")
        expect(dimensions).to_contain_text("style")
        expect(dimensions).to_contain_text("(1)")
        expect(page.locator("#leaderboard-tradeoff img")).to_be_visible()  # the trade-off chart
        page.get_by_role("tab", name="Arena").click()

        page.reload()  # the name is asked once: this browser remembers it
        expect(page.get_by_label("Annotator")).to_have_value("ana")
    finally:
        stop()


def test_the_next_prompt_is_answered_while_the_annotator_votes(tmp_path, page):
    """Queue mode: once a pair is shown, the next prompt's pair is generated in the background, so
    *Next* shows it without another generate call."""
    from tinyalign.app.prompts import Prompt

    engine = ScriptedEngine({"one": "first {n}", "two": "second {n}"})
    url, db, stop = serve(engine, tmp_path, prompt_queue=[Prompt("q1", "What is 2+2?"), Prompt("q2", "Say hi")])
    try:
        page.goto(url)
        page.get_by_label("Annotator").fill("ana")
        page.click("#next")
        page.wait_for_selector("#vote-a:not([disabled])")
        assert pane(page, "left") == "first 1"
        deadline = time.time() + 60  # generous: a busy machine may take seconds to start the background call
        while engine.calls < 2 and time.time() < deadline:  # q2, before anyone asked for it
            time.sleep(0.05)
        assert engine.calls == 2
        page.keyboard.press("Alt+1")
        expect(page.locator("#status")).to_contain_text("Vote #1 recorded")
        page.keyboard.press("Alt+N")
        expect(page.locator("#status")).to_contain_text("made while you voted")
        assert "Say hi" in page.inner_text("#pane-left") and pane(page, "left") == "first 2"
        assert engine.calls == 2  # no prompt left after q2: nothing more generated
        page.keyboard.press("Alt+2")
        expect(page.locator("#status")).to_contain_text("Vote #2 recorded")
        assert [(r["prompt_id"], r["response_a"], r["response_b"]) for r in read_votes(db)] == [
            ("q1", "first 1", "second 1"), ("q2", "first 2", "second 2")]
    finally:
        stop()


def test_annotate_only_hides_the_leaderboard_and_export(tmp_path, page):
    url, db, stop = serve(ScriptedEngine({"one": "1", "two": "2"}), tmp_path, annotate_only=True)
    try:
        page.goto(url)
        expect(page.get_by_role("tab", name="Arena")).to_be_visible()
        expect(page.get_by_role("tab", name="Leaderboard")).to_have_count(0)
        expect(page.get_by_role("tab", name="Export")).to_have_count(0)
    finally:
        stop()


def test_a_reviewed_bad_case_becomes_a_dpo_pair_and_a_good_one_an_sft_row(tmp_path, page):
    """Review tab: rewards that disagree (format high, accuracy low) are found, the completion is
    corrected, and the export pairs the correction over it; a completion marked good is exported as an
    SFT row, never as a pair; the leaderboard ignores the review rows."""
    from test_app_session import COMPLETIONS

    run = tmp_path / "grpo_run"
    run.mkdir()
    (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in COMPLETIONS))
    url, db, stop = serve(ScriptedEngine({"one": "1", "two": "2"}), tmp_path, completions=run)
    try:
        page.goto(url)
        page.get_by_role("tab", name="Review").click()
        page.locator("#review-disagree").get_by_label("Rewards disagree").check()
        page.click("#review-filter")
        expect(page.locator("#review-status")).to_contain_text("2 of 3 completions")
        expect(page.locator("#review-list")).not_to_contain_text("<think>4</think>")
        page.locator("#review-list").get_by_text("<think>hmm</think> 9").click()
        expect(page.locator("#review-completion textarea")).to_have_value("<think>hmm</think> 9")
        page.fill("#review-correction textarea", "<think>3+5=8</think> 8")
        page.click("#review-bad")
        expect(page.locator("#review-status")).to_contain_text("Review #1 recorded")
        page.locator("#review-list").get_by_text("· 2").click()  # 1+1? answered "2": right as it is
        expect(page.locator("#review-completion textarea")).to_have_value("2")
        page.click("#review-good")
        expect(page.locator("#review-status")).to_contain_text("Review #2 recorded: line 3 is good")
        page.get_by_role("tab", name="Export").click()
        page.click("#export-sft")
        expect(page.locator("#export-status")).to_contain_text("Wrote 1 SFT rows")
        assert [json.loads(line) for line in (tmp_path / "pairs.sft.jsonl").read_text().splitlines()] == [
            {"prompt": [{"role": "user", "content": "1+1?"}], "completion": [{"role": "assistant", "content": "2"}]}]
        page.click("#export")
        expect(page.locator("#export-status")).to_contain_text("Wrote 1 DPO pairs from 2 votes")
        [pair] = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
        assert pair == {"prompt": [{"role": "user", "content": "3+5?"}],
                        "chosen": [{"role": "assistant", "content": "<think>3+5=8</think> 8"}],
                        "rejected": [{"role": "assistant", "content": "<think>hmm</think> 9"}]}
        from tinyalign.prefs import leaderboard

        assert leaderboard(db) == []
    finally:
        stop()


def test_on_a_phone_the_answers_stay_side_by_side(tmp_path, browser):
    """At 390 px the panes must not stack: 'A (left)' and 'B (right)' have to be what is shown, and
    comparing two answers must not need scrolling between them."""
    url, db, stop = serve(ScriptedEngine({"one": "first answer", "two": "second answer"}), tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        phone = context.new_page()
        phone.goto(url)
        ask(phone, "hi")
        left, right = (phone.locator(f"#pane-{side}").bounding_box() for side in ("left", "right"))
        assert left["x"] + left["width"] <= right["x"] and abs(left["y"] - right["y"]) < 1
    finally:
        context.close()
        stop()


def test_votes_become_a_dpo_run_whose_adapter_the_app_serves(arena, page, tmp_path):
    """The closed loop: browser vote with an edit -> export -> tinyalign.dpo -> the new adapter in the app."""
    import subprocess
    import sys

    app, db = arena
    page.goto(app.url)
    pick(page, "Checkpoint A (left)", "aaa")
    pick(page, "Checkpoint B (right)", "bbb")
    ask(page, "Which letter?")
    vote(page, "both-bad", edited="A.")  # neither "AAA..." nor "BBB...": the edit is the answer wanted
    pairs = tmp_path / "pairs.jsonl"
    subprocess.run([sys.executable, "-m", "tinyalign.prefs", "export", str(db), "--out", str(pairs)], check=True)
    exported = [json.loads(line) for line in pairs.read_text().splitlines()]
    ours = [row for row in exported if row["chosen"][0] == {"role": "assistant", "content": "A."}]
    assert len(ours) == 2  # both bad with an edit: the edit over each answer
    # the module's arena holds the earlier tests' votes too; DPO trains on this vote's pairs alone, so what
    # the new adapter answers is this vote's doing (with all of them it answered like its start)
    pairs.write_text("".join(json.dumps(row) + "\n" for row in ours))

    runs = trained_adapters()
    out = tmp_path / "dpo"
    recipe = builtin("tiny_dpo.yaml")
    subprocess.run([sys.executable, "-m", "tinyalign.dpo", str(recipe), f"model.adapter={runs['aaa']}",
                    f"data.source={pairs}", "data.prompt=null", "data.chosen=null", "data.rejected=null",
                    "data.test_split=null", "data.limit=null", "train.max_steps=30",
                    "train.learning_rate=1e-2", "train.warmup_steps=0",  # 10 steps left one machine's answer as it was
                    "train.per_device_train_batch_size=2", f"output_dir={out}"],
                   check=True, capture_output=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert (out / "adapter_model.safetensors").is_file()

    served = start_app({"aaa": runs["aaa"], "dpo": out}, tmp_path / "next.sqlite")  # aaa's recipe: greedy
    try:
        page.goto(served.url)
        pick(page, "Checkpoint A (left)", "dpo")
        pick(page, "Checkpoint B (right)", "aaa")
        ask(page, "Say something")
        shown = pane(page, "left"), pane(page, "right")
    finally:
        served.stop()
    # Each pane shows what its own adapter answers outside the app, and the two differ, so the new DPO run is
    # what answers on the left. The vote's edit "A." (chosen over both answers) moves the DPO adapter to an
    # answer with nothing in it but the edit's characters. Which answer depends on the CPU (float sums differ),
    # so the test compares each pane with its adapter's own answer, not with a fixed string.
    from tinyalign.app.engine import Engine
    from tinyalign.config import recipe as recipes

    settings = recipes.load(runs["aaa"] / "recipe.yaml")
    engine = Engine.load(settings.model, {"aaa": str(runs["aaa"]), "dpo": str(out)})
    own = {name: engine.generate([[{"role": "user", "content": "Say something"}]], [name], temperature=0.0,
                                 max_new_tokens=settings.generation["max_new_tokens"])[0].strip() for name in ("dpo", "aaa")}
    assert shown == (own["dpo"], own["aaa"]), own
    # (nothing but the edit's characters, and line breaks between them: bf16 autocast on some CPUs breaks the line)
    assert set(shown[1]) == {"A"} and set("".join(shown[0].split())) <= set("A.") and shown[0] != shown[1], shown
