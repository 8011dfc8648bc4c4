"""The same recipes under `accelerate launch` with two processes (DDP over gloo on this CPU-only box):
4-bit QLoRA SFT and GRPO finish, split the data between the processes and write the adapter. And the
accelerate config shipped in recipes/accelerate/ is one accelerate accepts, and the one these tests run."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyalign.config.recipe import BUILTIN, builtin
from tinyalign.training import run

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = BUILTIN / "accelerate"


def launch(method: str, recipe: Path, *overrides: str) -> subprocess.CompletedProcess:
    # --main_process_port 0: a free port, so parallel test runs on one machine do not collide
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "ddp.yaml"),
           "--num_processes", "2", "--main_process_port", "0", "-m", f"tinyalign.{method}", str(recipe), *overrides]
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    print(f"2-process {method}: {time.time() - start:.0f} s")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def log_at(state: dict, step: int) -> dict:
    return next(e for e in state["log_history"] if e.get("step") == step and "loss" in e)


def test_only_accelerate_configs_the_suite_runs_are_shipped():
    # FSDP and DeepSpeed are not: on a CPU box accelerate runs an FSDP config as plain DDP (its FSDP
    # plugin is set only for GPU-like devices), and DeepSpeed needs CUDA and its own package
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == ["ddp.yaml"]


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU")])
def test_shipped_accelerate_configs_are_accepted_by_accelerate(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type.value == kind and config.num_processes == 2
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith(f"# accelerate launch --config_file recipes/accelerate/{name}.yaml -m tinyalign.")


@pytest.mark.slow
def test_two_process_sft_splits_each_batch_and_saves_the_adapter(tiny_sft_run, tmp_path):
    out = tmp_path / "ddp_sft"
    launch("sft", tiny_sft_run / "recipe.yaml", f"output_dir={out}", "train.max_steps=2", "train.save_steps=2")

    assert run.is_finished(out)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # Each process trained on its own half of the same shuffled data: after 2 steps of 2 x 16 rows the
    # pair has seen exactly the rows one process sees in 4 steps of 16 (TRL sums tokens over processes).
    single = json.loads((tiny_sft_run / "trainer_state.json").read_text())
    assert log_at(state, 2)["num_tokens"] == log_at(single, 4)["num_tokens"]
    from safetensors.torch import load_file

    assert load_file(out / "adapter_model.safetensors").keys() == \
        load_file(tiny_sft_run / "adapter_model.safetensors").keys()


@pytest.mark.slow
def test_two_process_grpo_from_an_sft_adapter_finishes_with_rewards_logged(tiny_sft_run, tmp_path):
    out = tmp_path / "ddp_grpo"
    # 16 completions per process = 2 prompts x 8 answers each
    done = launch("grpo", builtin("tiny_grpo.yaml"), f"model.adapter={tiny_sft_run}", f"output_dir={out}",
                  "train.max_steps=2", "train.per_device_train_batch_size=16", "train.logging_steps=1",
                  "train.save_steps=2")

    # One process probed; the other read its verdict and trained alongside it.
    verdict = json.loads((out / "probe.json").read_text())["verdict"]
    assert done.stdout.count(f"verdict: {verdict}") == 1, done.stdout[-2000:]
    assert run.is_finished(out)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # The SFT start solves some answers: the reward is a real share, and grouped answers disagree.
    assert 0.0 < log_at(state, 1)["rewards/exact_match/mean"] < 1.0
    lines = (out / "completions.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["rewards"] for line in lines)
