"""The arena app below the browser: the multi-adapter engine, a match and its votes, the command line.

Two tiny LoRA adapters are trained to answer "AAA" and "BBB" (tests/helpers_app.py). The trap the
engine must avoid: a model-wide set_adapter() shared by two panes, so that one pane silently answers
with the other's checkpoint. Here every pane must answer with its own adapter, even from one batched
call and with other generations running in other threads.
"""

import json
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from helpers_app import REPO, one_torch_thread, read_votes, trained_adapters

from tinyalign.app import cli
from tinyalign.app import engine as engine_module
from tinyalign.app.arena import Match
from tinyalign.app.engine import Engine
from tinyalign.core.errors import UserError
from tinyalign.prefs import VoteStore

pytestmark = [
    pytest.mark.slow,  # trains two tiny adapters (~10 s each), shared with test_app_browser.py
    # The test adapters put LoRA on the tied output layer on purpose (see helpers_app.train_adapter).
    pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`:UserWarning"),
]

HELLO = [{"role": "user", "content": "hello there"}]
STORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "tell me a long story"}]


@pytest.fixture(scope="module")
def runs():
    return {name: str(path) for name, path in trained_adapters().items()}


@pytest.fixture(scope="module")
def engine(runs):
    spec, defaults = cli.base_spec(runs, None)  # the base comes from the runs' recipe.yaml
    with one_torch_thread():
        yield Engine.load(spec, runs, defaults)


@pytest.fixture
def generate_calls(engine, monkeypatch):
    """Every model.generate() call the engine makes, with the adapter routing it asked for."""
    calls = []
    real = engine.model.generate

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append({"adapter_names": kwargs.get("adapter_names"), "rows": out.shape[0],
                      "new_tokens": out.shape[1] - kwargs["input_ids"].shape[1]})
        return out

    monkeypatch.setattr(engine.model, "generate", spy)
    return calls


def says(text, letter):
    """The adapter's answer: its letter from the start (it may not have learned where to stop), no other."""
    return text.startswith(letter * 3) and set(text) == {letter}


# ---------------------------------------------------------------- the engine


def test_both_panes_answer_with_their_own_checkpoint_from_one_batched_call(engine, generate_calls):
    assert engine.names == ["base", "aaa", "bbb"]
    left, right = engine.generate([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=8)
    assert says(left, "A") and says(right, "B")
    assert generate_calls == [{"adapter_names": ["aaa", "bbb"], "rows": 2, "new_tokens": 8}]

    # The other way round, with different prompts per row (left padding) and the plain base.
    left, right = engine.generate([STORY, HELLO], ["bbb", "aaa"], max_new_tokens=8)
    assert says(left, "B") and says(right, "A")
    base, with_a = engine.generate([HELLO, HELLO], ["base", "aaa"], max_new_tokens=8)
    assert says(with_a, "A") and not base.startswith(("AAA", "BBB"))
    assert generate_calls[-1]["adapter_names"] == ["__base__", "aaa"]

    # A row answers the same alone as in a mixed batch: the batch does not leak one adapter into another.
    assert engine.generate([HELLO], ["base"], max_new_tokens=8) == [base]


def test_concurrent_generations_share_a_call_and_keep_their_checkpoints(engine, generate_calls):
    """Four tabs at once, each with its own order of checkpoints: the waiting requests are served
    together, in fewer generate calls than tabs, and every row still answers with its own adapter."""
    orders = [["aaa", "bbb"], ["bbb", "aaa"], ["bbb", "base"], ["aaa", "aaa"]]
    results = {}
    together = threading.Barrier(len(orders))

    def tab(i):
        together.wait()
        results[i] = engine.generate([HELLO, STORY], orders[i], max_new_tokens=6 + i)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(len(orders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for i, order in enumerate(orders):
        for name, text in zip(order, results[i]):
            if name != "base":
                assert says(text, name[0].upper()), (order, results[i])
    assert len(generate_calls) < len(orders) and sum(c["rows"] for c in generate_calls) == 2 * len(orders)
    # Each tab's answers end at its own max_new_tokens, whatever the others asked for.
    assert [len(results[i][0]) <= 6 + i for i in range(len(orders))] == [True] * len(orders)


@pytest.fixture
def reader_keeps_up(monkeypatch):
    """Hold generation after each token until the reader has taken it. A reader that falls behind
    skips to the newest texts by design, so on a busy machine how many snapshots it sees depends on
    the scheduler; in step with the generation it must see every token."""
    real_add = engine_module._Answers.add

    def add_and_wait(self, tokens):
        real_add(self, tokens)
        deadline = time.monotonic() + 10
        while not self.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.001)

    monkeypatch.setattr(engine_module._Answers, "add", add_and_wait)


def test_answers_stream_token_by_token(engine, reader_keeps_up):
    snapshots = list(engine.stream([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=6))
    assert len(snapshots) >= 6  # one per token, then the final texts
    for before, after in zip(snapshots, snapshots[1:]):
        assert after[0].startswith(before[0]) and after[1].startswith(before[1])
    assert snapshots[-1] == engine.generate([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=6)


def test_a_reader_that_falls_behind_skips_to_the_newest_texts(engine, generate_calls):
    """A tab that could not keep up is shown where the answers are now, not a backlog of old texts."""
    stream = engine.stream([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=6)
    first = next(stream)
    deadline = time.monotonic() + 120
    while not generate_calls and time.monotonic() < deadline:  # the generation ends while nobody reads
        time.sleep(0.01)
    rest = list(stream)
    final = engine.generate([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=6)
    # Not the texts in between: the final ones (once more as the newest snapshot, if the reader came
    # back before the generation's end was queued).
    assert rest in ([final], [final, final])
    assert final[0].startswith(first[0]) and final[1].startswith(first[1])


def test_a_closed_stream_stops_its_generation(engine, generate_calls):
    """A closed tab closes its stream: generation stops at once instead of running to max_new_tokens."""
    stream = engine.stream([HELLO, HELLO], ["aaa", "bbb"], max_new_tokens=400)
    next(stream)
    stream.close()
    assert engine.generate([HELLO], ["bbb"], max_new_tokens=3) == ["BBB"]  # the lock was released
    cancelled = [c for c in generate_calls if c["rows"] == 2][-1]
    assert cancelled["new_tokens"] < 50


def test_unknown_checkpoint_is_refused(engine):
    with pytest.raises(UserError, match="unknown checkpoint 'runs/other'.*base, aaa, bbb"):
        engine.generate([HELLO, HELLO], ["aaa", "runs/other"])


# ---------------------------------------------------------------- a match and its votes


def play(engine, match, message, system=""):
    match.ask(message)
    settings = {"temperature": 0.0, "max_new_tokens": 6, "system": system}
    answers = engine.generate(list(match.conversations(system)), [match.model_a, match.model_b], max_new_tokens=6)
    match.answer(*answers, settings)


def test_multi_turn_votes_land_in_the_store_with_each_side_its_own_history(engine, runs, tmp_path):
    db = tmp_path / "prefs.sqlite"
    store = VoteStore(db)
    match = Match.pick("aaa", "bbb")
    play(engine, match, "hi", system="Be brief.")
    assert match.can_vote
    first = match.vote(store, "b", annotator="ana", edited="Hello!", tags=["verbose"], run_dirs=engine.checkpoints)
    with pytest.raises(UserError, match="already has its vote"):
        match.vote(store, "a", annotator="ana", run_dirs=engine.checkpoints)

    play(engine, match, "and again?")
    # Each checkpoint saw its own earlier answer.
    prompt_a, prompt_b = match.conversations()
    assert says(prompt_a[1]["content"], "A") and says(prompt_b[1]["content"], "B")
    second = match.vote(store, "tie", annotator="ana", run_dirs=engine.checkpoints)

    rows = read_votes(db)
    assert [row["id"] for row in rows] == [first, second]
    row = rows[0]
    assert (row["model_a"], row["model_b"], row["vote"]) == ("aaa", "bbb", "b")
    assert (row["annotator"], row["edited"]) == ("ana", "Hello!")
    assert says(row["response_a"], "A") and says(row["response_b"], "B")
    assert json.loads(row["conversation"]) == [{"role": "user", "content": "hi"}]
    assert json.loads(row["tags"]) == ["verbose"] and row["swapped"] == 0
    assert (row["run_dir_a"], row["run_dir_b"]) == (str(Path(runs["aaa"]).resolve()), str(Path(runs["bbb"]).resolve()))
    settings = json.loads(row["settings"])
    assert settings["system"] == "Be brief." and settings["max_new_tokens"] == 6 and "conversation_b" not in settings

    # Turn 2: the stored conversation is A's side; B's differing history is kept beside it.
    conversation = json.loads(rows[1]["conversation"])
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    assert conversation[1]["content"] == rows[0]["response_a"]
    assert json.loads(rows[1]["settings"])["conversation_b"][1]["content"] == rows[0]["response_b"]


def test_anonymous_match_hides_names_maps_the_clicked_side_and_ends_with_its_vote(engine, tmp_path):
    draws = [Match.draw(["base", "aaa", "bbb"], random.Random(seed)) for seed in range(40)]
    assert all(d.model_a != d.model_b and d.anonymous for d in draws)
    assert {d.swapped for d in draws} == {True, False}
    assert {(d.model_a, d.model_b) for d in draws} >= {("aaa", "bbb"), ("bbb", "aaa"), ("base", "aaa")}

    store = VoteStore(tmp_path / "prefs.sqlite")
    match = Match(model_a="aaa", model_b="bbb", anonymous=True, swapped=True)  # bbb shown on the left
    play(engine, match, "hi")
    assert match.left == "bbb" and not match.names_visible
    left_rows, right_rows = match.displayed()
    assert says(left_rows[0][1], "B") and says(right_rows[0][1], "A")
    match.vote(store, "a", annotator="ana")  # the annotator clicks "A is better": the LEFT pane, i.e. bbb
    [row] = read_votes(tmp_path / "prefs.sqlite")
    assert (row["vote"], row["swapped"]) == ("b", 1) and says(row["response_b"], "B")
    assert json.loads(row["settings"])["anonymous"] is True
    assert match.names_visible and not match.can_continue
    with pytest.raises(UserError, match="new round"):
        match.ask("more?")


# ---------------------------------------------------------------- the command line


def run_main(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    err = capsys.readouterr().err
    return exit_info.value.code, err


def test_command_line_mistakes_end_in_one_line_and_write_nothing(runs, tmp_path, capsys):
    other_base = tmp_path / "other"
    shutil.copytree(runs["aaa"], other_base)
    recipe = yaml.safe_load((other_base / "recipe.yaml").read_text())
    recipe["model"]["name"] = "Qwen/Qwen2.5-0.5B-Instruct"
    (other_base / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    db = tmp_path / "prefs.sqlite"
    cases = [
        (["--adapter", runs["aaa"]], "write NAME=RUN_DIR"),
        (["--adapter", f"base={runs['aaa']}"], "reserved for the base model"),
        (["--adapter", f"a/b={runs['aaa']}"], "not allowed"),
        (["--adapter", f"x={runs['aaa']}", "--adapter", f"x={runs['bbb']}"], "given twice"),
        ([], "name at least one checkpoint"),
        (["--adapter", f"x={tmp_path / 'missing'}"], "no adapter (adapter_config.json)"),
        (["--adapter", f"x={empty}"], "is the run finished?"),
        (["--adapter", f"a={runs['aaa']}", "--adapter", f"q={other_base}"], "different bases"),
        (["--base", "Qwen/Qwen2.5-0.5B-Instruct", "--adapter", f"a={runs['aaa']}"], "a was trained on tiny:qwen2-1m"),
        (["--adapter", f"a={runs['aaa']}", "--auth", "ana"], "--auth expects USER:PASS"),
        (["--adapter", f"a={runs['aaa']}", "--db", str(tmp_path / "no" / "such" / "p.sqlite")], "cannot create"),
        (["--adapter", f"a={runs['aaa']}", "--gold", str(tmp_path / "gold.jsonl")], "give --prompts too"),
    ]
    for argv, message in cases:
        code, err = run_main(capsys, "--db", str(db), *argv)  # a --db in argv comes later, so it wins
        assert code == 2, argv
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)
    assert not db.exists()

    # A file that is not a vote store is refused and left byte for byte as it was.
    db.write_bytes(b"my notes, not a database")
    code, err = run_main(capsys, "--adapter", f"a={runs['aaa']}", "--db", str(db))
    assert code == 2 and "not an SQLite database" in err
    assert db.read_bytes() == b"my notes, not a database"


def test_a_busy_port_a_bad_host_and_a_locked_store_are_refused_before_the_model_loads(runs, tmp_path, capsys,
                                                                                      monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(Engine, "load", no_model)
    adapter = ["--adapter", f"a={runs['aaa']}"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_main(capsys, *adapter, "--db", str(tmp_path / "p.sqlite"), "--port", str(port))
    assert code == 2 and err.count("\n") == 1 and f"--port {port} is in use" in err
    for host in ("not an address", "10.255.255.1"):  # a name nobody resolves; an address of another machine
        code, err = run_main(capsys, *adapter, "--db", str(tmp_path / "p.sqlite"), "--host", host)
        assert code == 2 and err.count("\n") == 1 and f"--host {host}" in err, err
    assert not (tmp_path / "p.sqlite").exists()

    # A store another process holds (an app stuck mid-write, a sqlite3 shell in a transaction), in its
    # usual WAL mode and in rollback-journal mode: refused at once, and no file appears beside it.
    for journal in ("wal", "delete"):
        db = tmp_path / journal / "prefs.sqlite"
        db.parent.mkdir()
        with VoteStore(db) as store:
            store.record(conversation=HELLO, response_a="x", response_b="y", model_a="a", model_b="b", vote="a")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute(f"PRAGMA journal_mode = {journal}")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM votes")
        beside = sorted(p.name for p in db.parent.iterdir())
        code, err = run_main(capsys, *adapter, "--db", str(db))
        assert code == 2 and err.count("\n") == 1 and f"vote store {db} is locked" in err, err
        assert sorted(p.name for p in db.parent.iterdir()) == beside
        holder.execute("ROLLBACK")
        holder.close()


def test_a_downloaded_adapter_without_recipe_is_accepted_on_its_base(runs, tmp_path, capsys):
    """An adapter folder alone (no recipe.yaml) names its base by the folder it was loaded from; --base
    tiny:qwen2-1m is that folder, so it is the same base."""
    downloaded = tmp_path / "downloaded"
    shutil.copytree(runs["aaa"], downloaded, ignore=shutil.ignore_patterns("recipe.yaml"))
    trained_on = json.loads((downloaded / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(trained_on).is_dir()  # the resolved cache folder, not "tiny:qwen2-1m"
    spec, _ = cli.base_spec({"dl": str(downloaded)}, "tiny:qwen2-1m")
    assert spec.name == "tiny:qwen2-1m"

    config = json.loads((downloaded / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "Qwen/Qwen2.5-0.5B-Instruct"
    (downloaded / "adapter_config.json").write_text(json.dumps(config))
    code, err = run_main(capsys, "--adapter", f"dl={downloaded}", "--base", "tiny:qwen2-1m")
    assert code == 2 and "dl was trained on Qwen/Qwen2.5-0.5B-Instruct, not --base tiny:qwen2-1m" in err


def test_app_py_is_the_command(tmp_path):
    """`python app.py` runs the same checks: exit status 2, one line, no traceback."""
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "--adapter", "sft=" + str(tmp_path / "nope")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: model.adapter: no adapter") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no vote store appeared


def test_the_app_package_map_names_every_module_it_holds():
    import re
    from pathlib import Path

    import tinyalign.app

    folder = Path(tinyalign.app.__file__).parent
    named = set(re.findall(r"^(\w+\.py)  ", tinyalign.app.__doc__, re.M))
    assert named == {p.name for p in folder.glob("*.py")} - {"__init__.py", "__main__.py"}
