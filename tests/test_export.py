"""`python -m tinyalign.export`: a merged model answers exactly like the adapter it came from, and loads
with plain transformers (no peft, no tinyalign); mistakes end in one line and leave nothing behind."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from tinyalign import export
from tinyalign.config import recipe as recipes
from tinyalign.data import loading as data
from tinyalign.models import loading as model
from tinyalign.models.generate import generate

HELD_OUT = 100


def greedy(policy, tokenizer, prompts) -> list[str]:
    return [c[0] for c in generate(policy, tokenizer, prompts, max_new_tokens=16)]


def agreement(a, b) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


@pytest.fixture(scope="module")
def held_out(tiny_sft_run):
    recipe = recipes.load(tiny_sft_run / "recipe.yaml")
    rows = data.eval_rows(recipe.data, limit=HELD_OUT, seed=recipe.seed)
    return recipe, [r["prompt"] for r in rows], [r["answer"] for r in rows]


@pytest.fixture(scope="module")
def four_bit_answers(tiny_sft_run, held_out):
    """What the run itself answers: its adapter on the 4-bit base it was trained on, computed in fp32 like the
    merges below (on a CPU with native bf16 tinyalign serves it under bf16 autocast, whose rounding moves a
    few greedy answers: the merge's arithmetic is what these tests check, not the serving precision)."""
    recipe, prompts, _ = held_out
    in_fp32 = dataclasses.replace(recipe.model, dtype="float32")
    policy, tokenizer = model.load_with_adapters(in_fp32, {"sft": str(tiny_sft_run)})
    return greedy(policy, tokenizer, prompts)


def load_plain(folder: Path):
    """The export as a user outside tinyalign loads it: transformers alone, from the folder alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
def test_merged_model_answers_exactly_like_the_adapter_on_a_full_precision_base(tiny_sft_run, held_out,
                                                                                 four_bit_answers, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe, prompts, gold = held_out
    out = tmp_path / "merged"
    # fp32 (the default on CPU; a GPU machine would merge in bf16/fp16): equality down to the last answer
    export.main([str(tiny_sft_run), "--merge", "--dtype", "float32", "--out", str(out)])

    merged, tokenizer = load_plain(out)
    assert merged.dtype == torch.float32
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert tokenizer.chat_template == model.load_tokenizer(recipe.model, str(tiny_sft_run)).chat_template
    merged_answers = greedy(merged, tokenizer, prompts)

    base = AutoModelForCausalLM.from_pretrained(model.resolve_name(recipe.model.name), dtype=torch.float32)
    adapter = PeftModel.from_pretrained(base, str(tiny_sft_run)).eval()
    adapter_answers = greedy(adapter, tokenizer, prompts)

    assert agreement(merged_answers, adapter_answers) == 1.0
    # The trained skill survived the merge (the base scores ~0 % here: it answers "46 (12+34)").
    assert agreement(merged_answers, gold) >= 0.5
    # The adapter was trained against NF4-rounded weights; on the original ones a few answers move.
    print(f"merged vs 4-bit adapter: {agreement(merged_answers, four_bit_answers):.0%} agree; held-out "
          f"accuracy merged {agreement(merged_answers, gold):.0%}, 4-bit {agreement(four_bit_answers, gold):.0%}")


@pytest.mark.slow
def test_dequantize_merge_reproduces_the_4bit_run(tiny_sft_run, held_out, four_bit_answers, tmp_path):
    _, prompts, _ = held_out
    out = tmp_path / "merged"
    export.main([str(tiny_sft_run), "--merge", "--dequantize", "--out", str(out)])
    merged, tokenizer = load_plain(out)
    assert agreement(greedy(merged, tokenizer, prompts), four_bit_answers) == 1.0


@pytest.mark.slow
def test_base_published_pre_quantised_is_dequantised_not_merged_in_4bit(tiny_sft_run, held_out,
                                                                        four_bit_answers, tmp_path):
    """A run trained on a `*-bnb-4bit` checkpoint: the merge must land in full-precision weights."""
    import yaml

    recipe, prompts, _ = held_out
    prequantised = tmp_path / "tiny-bnb-4bit"
    model.load_base(recipe.model).save_pretrained(prequantised)
    model.load_tokenizer(recipe.model).save_pretrained(prequantised)
    run = tmp_path / "run"
    shutil.copytree(tiny_sft_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    raw = yaml.safe_load((run / "recipe.yaml").read_text())
    raw["model"]["name"] = str(prequantised)
    (run / "recipe.yaml").write_text(yaml.safe_dump(raw))

    export.main([str(run), "--merge", "--out", str(tmp_path / "merged")])
    assert "quantization_config" not in json.loads((tmp_path / "merged" / "config.json").read_text())
    merged, tokenizer = load_plain(tmp_path / "merged")
    assert agreement(greedy(merged, tokenizer, prompts), four_bit_answers) == 1.0


def test_adapter_only_export_carries_adapter_tokenizer_and_recipe(tiny_sft_run, tmp_path):
    out = tmp_path / "adapter"
    export.main([str(tiny_sft_run / "checkpoint-12"), "--out", str(out)])
    assert {p.name for p in out.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors",
                                               "tokenizer.json", "chat_template.jinja", "recipe.yaml"}
    assert (out / "adapter_model.safetensors").read_bytes() == \
        (tiny_sft_run / "checkpoint-12" / "adapter_model.safetensors").read_bytes()
    assert not list(out.glob("optimizer*"))  # resume state is not part of a shareable adapter


@pytest.mark.parametrize("case, needle", [
    ("missing run dir", "run directory not found"),
    ("no adapter", "holds no adapter"),
    ("out exists", "already exists"),
    ("dequantize alone", "add --merge"),
])
def test_mistakes_end_in_one_line_and_write_nothing(tiny_sft_run, tmp_path, capsys, case, needle):
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoint-6").mkdir(parents=True)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    argv = {
        "missing run dir": [str(tmp_path / "nope"), "--merge", "--out", str(tmp_path / "out")],
        "no adapter": [str(unfinished), "--merge", "--out", str(tmp_path / "out")],
        "out exists": [str(tiny_sft_run), "--merge", "--out", str(occupied)],
        "dequantize alone": [str(tiny_sft_run), "--dequantize", "--out", str(tmp_path / "out")],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(SystemExit) as exit_:
        export.main(argv)

    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no .out-partial-*
    assert (occupied / "keep.txt").read_text() == "mine"
    if case == "no adapter":
        assert "checkpoint-6" in err  # points at what can be exported instead
