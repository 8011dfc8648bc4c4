"""The offline tiny model and tasks: deterministic, loadable like any HF model, held-out kept apart."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tinyalign.data import tasks
from tinyalign.models import tiny


@pytest.mark.slow
def test_build_is_deterministic(tmp_path):
    for name in ("a", "b"):
        tiny.build_model("tiny:qwen2-1m", tmp_path / name, pretrain_steps=3)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tokenizer_round_trips_any_text_and_renders_chatml():
    tokenizer = tiny.build_tokenizer()
    text = "12+34=46 ünïcödé <b>&</b>\n"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "1+2"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>"


def test_model_folder_loads_with_auto_classes():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny.model_path("tiny:qwen2-1m")
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 2e6
    assert AutoTokenizer.from_pretrained(path).chat_template == tiny.CHAT_TEMPLATE


def test_tasks_keep_held_out_questions_apart():
    for name in tasks.TASKS:
        folder = tasks.task_path(name)
        train, test = ([json.loads(line)["question"] for line in open(folder / f"{s}.jsonl")] for s in ("train", "test"))
        assert len(test) >= 300 and not set(train) & set(test)  # 500 sums, 300 word problems
