"""Many annotators at once: 8 writer processes x 100 votes, plus one writer killed with SIGKILL mid-way.

Every vote a writer saw acknowledged (record() returned) must be in the store, nothing may be counted
twice, and the file must pass PRAGMA integrity_check. Figures: pytest tests/test_prefs_concurrency.py -s
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyalign.votes import VoteStore

REPO = Path(__file__).resolve().parents[1]
WRITERS, VOTES_EACH = 8, 100

# One annotator process. It appends "id index" to its own ack file right after record() returns, with
# an unbuffered os.write, so a line in that file is a vote the user was told is recorded.
WRITER = """
import os, sys, time
from pathlib import Path
from tinyalign.votes import VoteStore

db, name, count, acks, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
store = VoteStore(db, timeout=60)  # no pause between votes: SQLite's unfair busy wait can stall one for seconds
ack = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # the file appearing says "ready"
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    begin = time.perf_counter()
    vote_id = store.record(conversation=[{"role": "user", "content": f"question {i}"}],
                           response_a=f"{name}-{i}", response_b="reference", model_a=name, model_b="base",
                           vote="a", annotator=name)
    os.write(ack, f"{vote_id} {i} {time.perf_counter() - begin:.6f}\\n".encode())
"""


def ack_lines(path):
    """(vote id, index, seconds record() took) for every complete line of an ack file."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # a line cut by the kill has no newline yet
    return [(int(vote_id), int(i), float(seconds)) for vote_id, i, seconds in (line.split() for line in lines)]


def acknowledged(path):
    """{vote id: index} of the votes a writer saw recorded."""
    return {vote_id: i for vote_id, i, _ in ack_lines(path)}


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.mark.slow
def test_concurrent_writers_and_a_killed_one_lose_no_acknowledged_vote(tmp_path):
    db = tmp_path / "prefs.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    def start(name, count, go):
        return subprocess.Popen([sys.executable, str(script), str(db), name, str(count),
                                 str(tmp_path / f"{name}.acks"), str(go)], env=env)

    def writers_done():
        return sum(len(acknowledged(tmp_path / f"{name}.acks")) for name in writers)

    # All nine create/open the same new store at once, then wait for their "go" file.
    writers = {f"w{k}": start(f"w{k}", VOTES_EACH, tmp_path / "go") for k in range(WRITERS)}
    victim = start("victim", 10**6, tmp_path / "go_victim")  # would run for ever; killed below
    try:
        names = [*writers, "victim"]
        wait_for(lambda: all((tmp_path / f"{n}.acks").exists() for n in names), 60, "writers to open the store")
        started = time.monotonic()
        # The victim gets a head start: SQLite's busy wait is unfair and could starve it behind eight
        # writers, and the kill must land while it and the others are all writing.
        (tmp_path / "go_victim").touch()
        wait_for(lambda: len(acknowledged(tmp_path / "victim.acks")) >= 10, 60, "the victim's first votes")
        (tmp_path / "go").touch()
        wait_for(lambda: writers_done() >= WRITERS * VOTES_EACH * 3 // 8, 60, "the writers' first votes")
        victim.send_signal(signal.SIGKILL)
        still_writing, others_at_kill = sum(p.poll() is None for p in writers.values()), writers_done()
        victim.wait()

        for name, process in writers.items():
            assert process.wait(timeout=120) == 0, f"writer {name} failed"
        elapsed = time.monotonic() - started
    finally:
        for process in [*writers.values(), victim]:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert still_writing > 0, "the kill must land while other writers are busy"

    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    stored = {}
    for vote_id, annotator, response in check.execute("SELECT id, annotator, response_a FROM votes"):
        stored.setdefault(annotator, {})[vote_id] = int(response.rsplit("-", 1)[1])
    check.close()

    for name in writers:
        acks = acknowledged(tmp_path / f"{name}.acks")
        assert len(acks) == VOTES_EACH
        assert stored[name] == acks  # the same ids, each holding the vote its writer sent
    victim_acks = acknowledged(tmp_path / "victim.acks")
    assert victim_acks.items() <= stored["victim"].items()
    # At most one vote committed in the instant between COMMIT and the ack line; none half-written.
    assert len(stored["victim"]) - len(victim_acks) in (0, 1)
    assert sorted(stored["victim"].values()) == list(range(len(stored["victim"])))

    with VoteStore(db, create=False) as store:  # the store still opens cleanly after the kill
        total = len(store.votes())
    assert total == WRITERS * VOTES_EACH + len(stored["victim"])
    latencies = sorted(s for name in names for _, _, s in ack_lines(tmp_path / f"{name}.acks"))
    print(f"\n{WRITERS} writers x {VOTES_EACH} votes + 1 killed after {len(victim_acks)} acknowledged: "
          f"{total} votes in {elapsed:.2f} s = {total / elapsed:.0f} committed votes/s; "
          f"at the kill {still_writing} writers were mid-way, {others_at_kill} of their votes done; "
          "integrity_check ok; record() took "
          f"{latencies[len(latencies) // 2] * 1000:.1f} ms median, {latencies[-1] * 1000:.0f} ms at worst")


def test_a_store_another_process_finishes_creating_while_this_one_opens_it_is_accepted(tmp_path, monkeypatch):
    """The interleaving behind a rare refusal with nine annotators starting at once: another process
    commits the new store's schema between this one's first look at the file and its second."""
    import threading

    from tinyalign.votes import store as vote_store

    db = tmp_path / "prefs.sqlite"
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the other process, half-way through creating the store
    other.execute(vote_store._SCHEMA)
    other.execute(f"PRAGMA user_version = {vote_store.SCHEMA_VERSION}")
    finisher = threading.Thread(target=lambda: other.execute("COMMIT"))
    connect = sqlite3.connect

    class Interleaved:
        """This process's connection: the other process commits right after the first look."""
        def __init__(self, *args, **kwargs):
            self.conn = connect(*args, **kwargs)

        def execute(self, sql, *args):
            result = self.conn.execute(sql, *args)
            if ("sqlite_master" in sql or "user_version" in sql) and not finisher.is_alive() \
                    and finisher.ident is None:
                finisher.start()
                finisher.join(0.5)  # time enough to commit unless this process holds the file for reading
            return result

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(vote_store.sqlite3, "connect", Interleaved)
    store = VoteStore(db, timeout=10)
    finisher.join(10)
    store.record(conversation=[{"role": "user", "content": "hi"}], response_a="x", response_b="y",
                 model_a="m1", model_b="m2", vote="a", annotator="ann")
    assert [v["response_a"] for v in store.votes()] == ["x"]
