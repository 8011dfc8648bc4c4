"""Tiny DPO on the model's own mistakes: chosen = the right sum, rejected = what the SFT model said."""

import json
import pickle

import pytest

from tinyalign import dpo
from tinyalign.config import recipe as recipes
from tinyalign.core.errors import UserError
from tinyalign.measure.solve_rate import held_out_accuracy
from tinyalign.models import loading as model
from tinyalign.models.generate import generate
from tinyalign.rewards import implicit, resolve

RECIPE = str(recipes.builtin("tiny_dpo.yaml"))


def own_mistakes(run_dir, out_file, prompts=400, k=4):
    """Sample the SFT model on training questions; every wrong answer becomes a rejected one."""
    recipe = recipes.load(str(recipes.builtin("tiny_sft.yaml")))
    rows = [json.loads(line) for line in open(tiny_task_file("tiny:addition", "train"))][:prompts]
    policy, tokenizer = model.load_with_adapters(recipe.model, {"sft": str(run_dir)})
    answers = generate(policy, tokenizer, [[{"role": "user", "content": r["question"]}] for r in rows],
                       k=k, temperature=1.0, max_new_tokens=16)
    pairs = {(r["question"], a.strip()) for r, group in zip(rows, answers) for a in group if a.strip() != r["answer"]}
    chosen = {r["question"]: r["answer"] for r in rows}
    with open(out_file, "w") as f:
        for question, wrong in sorted(pairs):
            f.write(json.dumps({"question": question, "chosen": chosen[question], "rejected": wrong}) + "\n")
    return len(pairs)


def tiny_task_file(task, split):
    from tinyalign.data.tasks import task_path

    return task_path(task) / f"{split}.jsonl"


@pytest.fixture(scope="module")
def dpo_run(tiny_sft_run, tmp_path_factory):
    """DPO from the SFT run on its own mistakes (the right sum chosen over what it said)."""
    folder = tmp_path_factory.mktemp("dpo")
    pairs = folder / "pairs.jsonl"
    assert own_mistakes(tiny_sft_run, pairs) >= 100
    out = folder / "dpo"
    dpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"data.source={pairs}", "data.test_split=null",
              f"output_dir={out}"])
    return out


def test_an_overwritten_run_keeps_no_held_out_figures_of_the_run_before(tiny_sft_run, dpo_run, tmp_path):
    # a run that holds pairs out measures itself (dpo_metrics.json); one that replaces it without held-out
    # pairs must not leave those figures beside its own adapter, as if they were its own
    out = tmp_path / "dpo"
    args = [RECIPE, f"model.adapter={tiny_sft_run}", f"data.source={dpo_run.parent / 'pairs.jsonl'}",
            "data.test_split=null", "train.max_steps=2", f"output_dir={out}"]
    dpo.main([*args, "data.test_size=20"])
    assert json.loads((out / implicit.METRICS).read_text())["pairs"] == 20
    dpo.main([*args, "overwrite=true"])
    assert (out / "adapter_model.safetensors").is_file() and not (out / implicit.METRICS).exists()


def test_dpo_on_own_mistakes_raises_held_out_accuracy(tiny_sft_run, dpo_run):
    out = dpo_run
    held_out = str(recipes.builtin("tiny_sft.yaml"))  # the addition task's questions and reference answers
    accuracy = held_out_accuracy(held_out, {"sft": str(tiny_sft_run), "dpo": str(out)}, limit=500)
    # DPO at least halves the SFT model's held-out errors (measured: 0.886 -> 0.984)
    assert 1 - accuracy["dpo"] <= (1 - accuracy["sft"]) / 2, accuracy
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    margins = [e["rewards/margins"] for e in log if "rewards/margins" in e]
    assert margins[-1] > margins[0]  # chosen pulls away from rejected


def test_the_dpo_run_s_implicit_reward_orders_the_pairs_it_learned_and_unseen_ones(dpo_run, tiny_sft_run):
    """As a GRPO reward: beta * (log pi_DPO - log pi_start) of each answer, the reward DPO fit to the pairs."""
    def ordered(rows, **params):
        reward = pickle.loads(pickle.dumps(resolve({"name": "implicit_reward", "model": str(dpo_run), **params})))
        prompts = [[{"role": "user", "content": r["question"]}] for r in rows] * 2
        scores = reward([[{"role": "assistant", "content": r[side]}] for side in ("chosen", "rejected") for r in rows],
                        prompts=prompts)
        return sum(c > r for c, r in zip(scores[:len(rows)], scores[len(rows):])) / len(rows)

    pairs = [json.loads(line) for line in open(dpo_run.parent / "pairs.jsonl")]
    held_out = [json.loads(line) for line in open(tiny_task_file("tiny:addition-prefs", "test"))]
    trained, unseen = ordered(pairs), ordered(held_out)
    # Whether the reward carries over to unseen slips (the right sum over a typical slip) depends on the
    # machine's SFT start, so only the trained pairs' floor says it learned (the minimum measured over five DPO
    # seeds and two machines less ~6); the held-out floor (the lower machine's minimum less ~5) catches an
    # order turned round: a sign or reference mistake puts the trained pairs near 10 %.
    assert trained >= 0.80, trained
    assert unseen >= 0.43, unseen
    # Without the reference (`reference: none`, the DPO model's own likelihood) the sums the start already
    # knew count too (measured over the same runs: minimum less ~5)
    assert ordered(held_out, reference="none") >= 0.94
    with pytest.raises(UserError, match="reference must be start or none"):
        resolve({"name": "implicit_reward", "model": str(dpo_run), "reference": "base"})
    with pytest.raises(UserError, match="is a sft run"):
        resolve({"name": "implicit_reward", "model": str(tiny_sft_run)})
    with pytest.raises(UserError, match="not a finished DPO run"):
        resolve({"name": "implicit_reward", "model": str(dpo_run / "nowhere")})


def test_a_vote_store_under_the_recipe_s_templates_is_one_line_naming_the_fix(tmp_path, capsys):
    # exported votes are whole conversations; the shipped recipe's templates ({question}) read a task file
    turn = [{"role": "user", "content": "2+2"}]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": turn, "chosen": [{"role": "assistant", "content": "4"}],
                                 "rejected": [{"role": "assistant", "content": "5"}]}) + "\n")
    out = tmp_path / "dpo"
    with pytest.raises(SystemExit) as exit_:
        dpo.main([RECIPE, "model.adapter=null", f"data.source={pairs}", "data.test_split=null", f"output_dir={out}"])
    assert exit_.value.code == 2 and not out.exists()
    assert "set data.prompt, data.chosen and data.rejected to null" in capsys.readouterr().err
