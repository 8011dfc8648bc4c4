"""bench/studies/real_rm.py's harness end to end on the tiny model: answers -> votes -> a reward model in its own
process -> the table and the JSON, and a rerun served from the stage cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_real_rm_smoke_runs_every_stage_and_a_rerun_reuses_them(tmp_path):
    work = tmp_path / "work"
    bench = [sys.executable, "-m", "bench.studies.real_rm", "--smoke", "--seeds", "0", "--work", str(work),
             "--record", str(tmp_path / "record.json")]
    command = [*bench, "--prompts", "200"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    result = json.loads((work / "results.json").read_text())
    votes = result["stages"]["votes"]
    assert votes["votes"] == 200 and sum(votes["by_vote"].values()) == 200
    (run,) = result["runs"]
    assert run["held_out_pairs"] == run["model_pairs"] + run["edit_pairs"] > 0
    assert run["train_pairs"] + run["held_out_pairs"] == votes["pairs"]
    assert 0 <= run["accuracy"] <= 1 and run["train_s"] > 0
    assert "| threads | seed |" in first.stdout and "held-out accuracy over 1 runs" in first.stdout
    answers = [json.loads(line) for line in (work / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 200 and all(len(r["answers"]) == len(r["cut"]) == 2 for r in answers)

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((work / "results.json").read_text())["runs"] == [run]  # every stage from the cache
    assert "answers in" not in again.stdout  # nothing generated again

    other = subprocess.run([*bench, "--prompts", "100"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert other.returncode != 0 and "holds answers for other settings (prompts)" in other.stderr
