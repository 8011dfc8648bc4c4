"""Tiny SFT through the real 4-bit QLoRA path raises held-out accuracy from ~0 to near perfect."""

import json
import subprocess
import sys

import yaml

from tinyalign.config.recipe import builtin
from tinyalign.measure.solve_rate import held_out_accuracy

RECIPE = str(builtin("tiny_sft.yaml"))


def test_sft_teaches_the_answer_style(tiny_sft_run):
    accuracy = held_out_accuracy(RECIPE, {"sft": str(tiny_sft_run)}, limit=200)
    # The base adds correctly but answers "46 (12+34)"; exact match wants "46".
    assert accuracy["base"] <= 0.05
    assert accuracy["sft"] >= 0.45, accuracy  # 18 steps (measured ~0.70); GRPO takes it from there


def test_run_directory_holds_adapter_recipe_and_logs(tiny_sft_run):
    names = {p.name for p in tiny_sft_run.iterdir()}
    # what `sample`, `evaluate`, `export` and the app load from a run: the adapter, the recipe that made it,
    # its logs, and the tokenizer with its chat template (saved as these three files by transformers 5)
    assert {"adapter_model.safetensors", "adapter_config.json", "recipe.yaml", "trainer_state.json",
            "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= names, sorted(names)
    assert any(n.startswith("checkpoint-") for n in names)
    resolved = yaml.safe_load((tiny_sft_run / "recipe.yaml").read_text())
    # tinyalign's defaults filled in (weight decay), the recipe's own settings winning over them (schedule)
    assert resolved["method"] == "sft" and resolved["train"]["weight_decay"] == 0.0
    assert resolved["train"]["lr_scheduler_type"] == "constant_with_warmup"
    assert json.loads((tiny_sft_run / "adapter_config.json").read_text())["r"] == resolved["model"]["lora"]["r"]
    log = json.loads((tiny_sft_run / "trainer_state.json").read_text())["log_history"]
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses[-1] < losses[0] / 2  # measured 5.5 -> 1.8 over the 18 steps


def test_finished_run_is_not_overwritten(tiny_sft_run):
    before = (tiny_sft_run / "adapter_model.safetensors").read_bytes()
    result = subprocess.run([sys.executable, "-m", "tinyalign.sft", RECIPE, f"output_dir={tiny_sft_run}"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "holds a finished run" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tiny_sft_run / "adapter_model.safetensors").read_bytes() == before
