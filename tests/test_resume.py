"""`resume=true`: a run killed with SIGKILL mid-training continues from its last checkpoint and ends
where an uninterrupted run ends — same steps, same learning-rate schedule, same batches, same weights;
for GRPO, the same sampled answers."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinyalign.config import recipe as recipes
from tinyalign.training import run

ROOT = Path(__file__).resolve().parent.parent
# Resumed runs replay the uninterrupted one on this CPU, up to float summation order.
RTOL = 1e-5


def logged(state: dict) -> dict[int, dict]:
    entries = [e for e in state["log_history"] if "loss" in e]
    steps = [e["step"] for e in entries]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return {e["step"]: e for e in entries}


def tokens_per_interval(entries: dict[int, dict]) -> dict[int, float]:
    """Tokens trained on between consecutive logs: equal counts mean the same batches were seen.
    TRL's running `num_tokens` restarts from 0 in a resumed process, hence the max()."""
    steps = sorted(entries)
    counts, previous = {}, 0.0
    for step in steps:
        total = entries[step]["num_tokens"]
        counts[step] = total - previous if total >= previous else total
        previous = total
    return counts


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / a.float().norm()).item()


def kill_when(cmd: list[str], log: Path, ready, what: str) -> None:
    """Start a run and SIGKILL it as soon as ready() holds, like a preempted Colab or a spot instance."""
    with open(log, "w") as stream:
        proc = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 300
        while not ready():
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"the run ended or stalled before {what}:\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def finish(cmd: list[str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def kill_then_resume(cmd: list[str], out: Path, at: int, until=lambda: True, what: str = "") -> None:
    """Run `cmd` into `out`, SIGKILL it once checkpoint-`at` is saved (and until() holds), then resume it
    to the end with resume=true."""
    kill_when(cmd + [f"output_dir={out}"], out.parent / f"{out.name}.log", lambda: saved(out, at) and until(),
              what or f"checkpoint-{at}")
    assert not run.is_finished(out) and run.checkpoints(out)[-1].name == f"checkpoint-{at}"
    finish(cmd + [f"output_dir={out}", "resume=true"])
    assert run.is_finished(out)


def logs_of(out: Path) -> dict[int, dict]:
    return logged(json.loads((out / "trainer_state.json").read_text()))


def adapter_drift(a: Path, b: Path) -> float:
    """The largest relative difference between two runs' final adapter tensors (same names required)."""
    first, second = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    return max(relative(first[k], second[k]) for k in first)


def saved(out: Path, step: int) -> bool:
    return (out / f"checkpoint-{step}" / "trainer_state.json").exists()  # the last file a checkpoint gets


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def completions_by_step(out: Path) -> dict[int, list[tuple]]:
    lines = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    return {step: [(c["prompt"], c["completion"], c["rewards"]) for c in lines if c["step"] == step]
            for step in sorted({c["step"] for c in lines})}


@pytest.mark.slow
def test_sigkilled_sft_run_resumes_to_the_uninterrupted_result(tiny_sft_run, tmp_path):
    # The fixture's resolved recipe.yaml: exactly the settings of the uninterrupted reference run.
    cmd = [sys.executable, "-m", "tinyalign.sft", str(tiny_sft_run / "recipe.yaml")]
    out = tmp_path / "killed"
    interrupted_at = 6
    planned = json.loads((tiny_sft_run / "trainer_state.json").read_text())["max_steps"]
    assert interrupted_at < planned
    kill_then_resume(cmd, out, at=interrupted_at)

    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == planned
    reference, after = logs_of(tiny_sft_run), logs_of(out)
    assert sorted(after) == sorted(reference)  # every step once: none repeated, none skipped
    for step in sorted(reference):
        assert after[step]["learning_rate"] == pytest.approx(reference[step]["learning_rate"], rel=1e-9), step
        assert after[step]["loss"] == pytest.approx(reference[step]["loss"], rel=RTOL), step
        assert after[step]["grad_norm"] == pytest.approx(reference[step]["grad_norm"], rel=RTOL), step
    assert tokens_per_interval(after) == tokens_per_interval(reference)  # the same batches, in order

    # Optimizer and scheduler state at the end, and the final adapter, match the uninterrupted run.
    last = f"checkpoint-{planned}"
    ref_opt = torch.load(tiny_sft_run / last / "optimizer.pt", weights_only=False)["state"]
    new_opt = torch.load(out / last / "optimizer.pt", weights_only=False)["state"]
    assert ref_opt.keys() == new_opt.keys()
    for i in ref_opt:
        assert new_opt[i]["step"] == ref_opt[i]["step"] == planned
        for moment in ("exp_avg", "exp_avg_sq"):
            assert relative(ref_opt[i][moment], new_opt[i][moment]) < 3 * RTOL, (i, moment)
    ref_sched = torch.load(tiny_sft_run / last / "scheduler.pt", weights_only=False)
    new_sched = torch.load(out / last / "scheduler.pt", weights_only=False)
    assert (new_sched["last_epoch"], new_sched["_last_lr"]) == (ref_sched["last_epoch"], ref_sched["_last_lr"])
    assert adapter_drift(tiny_sft_run, out) < RTOL
    print(f"killed after checkpoint-{interrupted_at}, resumed to step {planned}; max loss drift "
          f"{max(abs(after[s]['loss'] / reference[s]['loss'] - 1) for s in reference):.2e}")


@pytest.mark.slow
def test_sigkilled_grpo_run_resumes_sampling_the_same_answers(tiny_sft_run, tmp_path):
    cmd = [sys.executable, "-m", "tinyalign.grpo", str(recipes.builtin("tiny_grpo.yaml")),
           f"model.adapter={tiny_sft_run}", "probe=false", "train.max_steps=4", "train.save_steps=2",
           "train.logging_steps=1", "train.per_device_train_batch_size=16"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    finish(cmd + [f"output_dir={reference}"])
    # Killed after step 3 was logged but before checkpoint-4: step 3's completions are in the file.
    kill_then_resume(cmd, out, at=2, until=lambda: '{"step": 3,' in read(out / "completions.jsonl"),
                     what="step 3's completions")

    before, after = logs_of(reference), logs_of(out)
    assert sorted(after) == sorted(before) == [1, 2, 3, 4]
    for step in before:
        assert after[step]["learning_rate"] == before[step]["learning_rate"], step
        assert after[step]["reward"] == before[step]["reward"], step
        assert after[step]["loss"] == pytest.approx(before[step]["loss"], rel=RTOL, abs=1e-6), step
    # The generation RNG is restored too: the resumed steps sample the very answers the uninterrupted
    # run sampled, and completions.jsonl holds each step once.
    assert completions_by_step(out) == completions_by_step(reference)


@pytest.mark.slow
def test_sigkilled_dpo_run_resumes_its_trained_adapter_not_the_starting_one(tiny_sft_run, tmp_path):
    # A checkpoint of DPO-from-an-adapter also holds TRL's frozen reference copy in ref/; the Trainer
    # alone would resume that and restart the policy from the SFT weights.
    cmd = [sys.executable, "-m", "tinyalign.dpo", str(recipes.builtin("tiny_dpo.yaml")),
           f"model.adapter={tiny_sft_run}", "train.max_steps=4", "train.save_steps=2", "train.logging_steps=1"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    finish(cmd + [f"output_dir={reference}"])
    kill_then_resume(cmd, out, at=2)
    assert (out / "checkpoint-2" / "ref" / "adapter_model.safetensors").is_file()

    before, after = logs_of(reference), logs_of(out)
    assert sorted(after) == sorted(before) == [1, 2, 3, 4]
    for step in before:
        for key in ("loss", "rewards/margins", "rewards/chosen"):
            assert after[step][key] == pytest.approx(before[step][key], rel=RTOL, abs=1e-7), (step, key)
    assert adapter_drift(reference, out) < RTOL


def test_resume_passes_over_a_checkpoint_the_kill_left_half_written(tiny_sft_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_sft_run / "checkpoint-6", out / "checkpoint-6")
    # The Trainer writes a checkpoint's weights first and trainer_state.json last: killed in between.
    (out / "checkpoint-12").mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy(tiny_sft_run / "checkpoint-12" / name, out / "checkpoint-12" / name)
    recipe = recipes.load(tiny_sft_run / "recipe.yaml", [f"output_dir={out}", "resume=true"], method="sft")
    assert run.check_output_dir(recipe) == str(out / "checkpoint-6")
