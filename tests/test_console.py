"""The training console: one bar, one compact line per logging step with the method's numbers, a summary."""

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT

from tinyalign.config.recipe import builtin
from tinyalign.core import console

GRPO_LOG = {"loss": 0.1095, "grad_norm": 1.55, "learning_rate": 6.1e-05, "num_tokens": 31880.0,
            "completions/mean_length": 3.906, "completions/min_length": 2.0, "completions/max_length": 6.0,
            "completions/clipped_ratio": 0.0, "rewards/exact_match/mean": 0.625, "rewards/exact_match/std": 0.48,
            "reward": 0.625, "reward_std": 0.35, "frac_reward_zero_std": 0.125, "kl": 0.1113, "entropy": 0.3132,
            "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.0, "epoch": 0.16}


def test_grpo_line_shows_reward_accuracy_kl_entropy_length_and_clipped_share():
    text = console.line("grpo", GRPO_LOG, ["exact_match"])
    assert text == "reward 0.625  accuracy 0.625  kl 0.111  entropy 0.313  length 3.9  clipped 0%"


def test_grpo_accuracy_is_the_mean_of_the_accuracy_rewards_only():
    logs = {**GRPO_LOG, "rewards/math_accuracy/mean": 0.5, "rewards/think_format/mean": 0.9}
    assert "accuracy 0.562" in console.line("grpo", logs, ["exact_match", "math_accuracy"])


def test_sft_and_dpo_lines_show_loss_their_metric_and_lr():
    sft = {"loss": 1.2345, "grad_norm": 2.0, "learning_rate": 0.002, "mean_token_accuracy": 0.8123, "num_tokens": 9e3}
    dpo = {"loss": 0.512, "rewards/chosen": 0.3, "rewards/rejected": -0.9, "rewards/margins": 1.2,
           "rewards/accuracies": 0.875, "learning_rate": 0.0002, "logps/chosen": -3.2}
    assert console.line("sft", sft) == "loss 1.2345  token accuracy 81.2%  lr 2.0e-03"
    assert console.line("dpo", dpo) == "loss 0.5120  margin 1.200  pair accuracy 88%  lr 2.0e-04"
    rm = {"loss": 0.41, "accuracy": 0.8, "margin": 1.5, "mean_reward": 0.1, "learning_rate": 1e-3}
    assert console.line("rm", rm) == "loss 0.4100  pair accuracy 80%  margin 1.500  lr 1.0e-03"


def test_a_grpo_step_that_learns_nothing_is_flagged_on_its_line(capsys):
    callback = console.Console("grpo", {"method": "grpo", "doctor": False})
    args, state = SimpleNamespace(output_dir="x"), SimpleNamespace(global_step=0, max_steps=4, is_world_process_zero=True)
    callback.on_train_begin(args, state, None)
    for step, clipped in ((2, 1.0), (4, 0.5)):
        state.global_step = step
        callback.on_log(args, state, None, logs={**GRPO_LOG, "loss": 0.0, "completions/clipped_ratio": clipped})
    out = capsys.readouterr().out.splitlines()
    assert "clipped 100%" in out[0]
    assert out[0].endswith(" s/step  <- nothing is learned: every completion hit max_completion_length")
    assert "nothing is learned" not in out[1]


def test_console_prints_a_line_per_log_and_a_summary(capsys):
    recipe = {"method": "grpo", "rewards": [{"name": "exact_match", "weight": 1.0}]}
    callback = console.Console("grpo", recipe)
    args = SimpleNamespace(output_dir="runs/x")
    state = SimpleNamespace(global_step=0, max_steps=30, is_world_process_zero=True)
    callback.on_train_begin(args, state, None)
    for step in (10, 20, 30):
        state.global_step = step
        callback.on_step_end(args, state, None)
        callback.on_log(args, state, None, logs=dict(GRPO_LOG))
    callback.on_log(args, state, None, logs={"train_runtime": 3.0, "train_loss": 0.1})
    callback.on_train_end(args, state, None)
    out = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in out[:3]] == ["step 10/30", "step 20/30", "step 30/30"]
    assert all(re.search(r"reward 0\.625  accuracy 0\.625 .* \d+\.\d\d s/step$", line) for line in out[:3])
    assert re.fullmatch(r"trained 30 steps in \d+ s \(\d+\.\d\d s/step\); full logs: runs/x/trainer_state\.json", out[3])
    assert len(out) == 4  # the closing train_runtime log is in the summary, not a line of its own


@pytest.mark.slow
def test_a_training_command_prints_compact_lines_not_raw_dicts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tinyalign.sft", str(builtin("tiny_sft.yaml")), f"output_dir={tmp_path / 'run'}",
         "train.max_steps=6", "train.logging_steps=2", "train.save_strategy=no"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    both = result.stdout + result.stderr
    assert "{'" not in both and "\x1b[A" not in both  # no raw log dicts, no nested-bar escape codes
    assert "Generating train split" not in both and "PAD/BOS/EOS" not in both
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split("  ")[0] for line in lines] == ["step 2/6", "step 4/6", "step 6/6"]
    assert all(re.search(r"loss \d\.\d{4}  token accuracy \d+\.\d%  lr \d\.\de-0\d  \d+\.\d\d s/step$", line)
               for line in lines), lines
    assert re.search(r"^trained 6 steps in \d+ s", result.stdout, re.M)
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert "grad_norm" in state["log_history"][0]  # the full logs stay in the run directory


def test_the_one_time_tiny_model_build_is_announced_and_timed(tmp_path, monkeypatch, capsys):
    from tinyalign.models import tiny

    monkeypatch.setenv("TINYALIGN_HOME", str(tmp_path))
    monkeypatch.setattr(tiny, "build_model", lambda name, out: (out / "config.json").write_text("{}"))
    folder = tiny.model_path("tiny:qwen2-1m")
    err = capsys.readouterr().err
    assert f"building tiny:qwen2-1m once (~1-3 min on CPU) into {folder}" in err
    assert re.search(r"^built tiny:qwen2-1m in \d+ s$", err, re.M)
    tiny.model_path("tiny:qwen2-1m")
    assert capsys.readouterr().err == ""  # built once: later runs say nothing
