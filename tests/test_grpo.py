"""Tiny GRPO from a short SFT start: the probe says viable, held-out greedy accuracy rises."""

import json

import pytest

from tinyalign import grpo
from tinyalign.config.recipe import builtin
from tinyalign.measure.solve_rate import held_out_accuracy

RECIPE = str(builtin("tiny_grpo.yaml"))


@pytest.fixture(scope="module")
def grpo_run(tiny_sft_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny_grpo"
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}"])
    return out


def test_grpo_raises_held_out_accuracy(tiny_sft_run, grpo_run):
    accuracy = held_out_accuracy(RECIPE, {"sft": str(tiny_sft_run), "grpo": str(grpo_run)}, limit=500)
    # GRPO removes at least a third of the SFT model's held-out errors. Measured on all 500: sft 0.886 -> grpo
    # 0.97 on one machine (74 % fewer errors), 0.802 -> 0.892 on another (45 % fewer): the short SFT start
    # differs between CPUs, and so does what 60 GRPO steps leave
    assert 1 - accuracy["grpo"] <= (1 - accuracy["sft"]) * 2 / 3, accuracy


def test_probe_ran_first_and_said_viable(grpo_run):
    report = json.loads((grpo_run / "probe.json").read_text())
    assert report["verdict"] == "viable"
    assert 0.2 <= report["pass@1"] <= 0.95 and report["pass@8"] > report["pass@1"]


def test_reward_rises_and_completions_are_logged_with_scores(grpo_run):
    log = json.loads((grpo_run / "trainer_state.json").read_text())["log_history"]
    rewards = [e["reward"] for e in log if "reward" in e]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:2]) / 2
    assert "rewards/exact_match/mean" in log[0]
    lines = [json.loads(line) for line in (grpo_run / "completions.jsonl").read_text().splitlines()]
    assert lines and {"step", "prompt", "completion", "rewards"} <= set(lines[0])
    assert set(lines[0]["rewards"]) == {"exact_match"}
    assert any(line["rewards"]["exact_match"] == 1.0 for line in lines)
    assert any(line["rewards"]["exact_match"] == 0.0 for line in lines)  # bad cases are there to read


def test_the_policy_continues_a_reply_the_data_opens_and_only_its_own_words_are_scored(tiny_sft_run, tmp_path):
    """data.reply_start: each prompt ends with the reply's opening (TRL would start a new turn after a chat's
    last assistant message), and the completions the rewards score are what the policy wrote after it."""
    out = tmp_path / "begun"
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", "data.reply_start=({question}) =", "probe=false",
               "train.max_steps=1", "train.logging_steps=1", f"output_dir={out}"])
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        question = row["prompt"].split("user\n")[1].split("\n")[0]  # logged without the special tokens
        assert row["prompt"].endswith(f"assistant\n({question}) ="), row["prompt"]
        assert f"({question}) =" not in row["completion"], row
    assert json.loads((out / "trainer_state.json").read_text())["log_history"][-1]["step"] == 1


def test_no_signal_refuses_to_train(tiny_sft_run, tmp_path, capsys):
    # a reference no answer can match: pass@k is 0, GRPO would see only zero-advantage groups
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}", "data.answer=never{answer}"])
    assert exit_.value.code == 2
    assert "no signal" in capsys.readouterr().err
    assert not (out / "adapter_model.safetensors").exists()


def test_doctor_finds_nothing_wrong_with_the_healthy_run(grpo_run):
    from tinyalign.doctor import diagnose, load_run

    assert diagnose(*load_run(grpo_run)) == []


def test_doctor_names_a_far_too_high_learning_rate_in_a_real_run(tiny_sft_run, tmp_path):
    from tinyalign.doctor import diagnose, load_run

    out = tmp_path / "bad_lr"
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}", "train.learning_rate=2e-2",
               "train.max_steps=24", "train.logging_steps=2", "train.save_strategy=no", "probe=false"])
    findings = diagnose(*load_run(out))
    # Which symptom shows first depends on the CPU's sums: measured on one machine KL 1.9 -> 4.2 while the
    # reward fell 0.28 -> 0 (kl_runaway); on another the reward fell and every completion hit the cap
    # (reward_falling, nothing_learned). What a user must get either way: a finding whose override lowers
    # the learning rate.
    assert any(o.startswith("train.learning_rate=") and float(o.split("=")[1]) < 2e-2
               for f in findings for o in f.overrides), [(f.symptom, f.overrides) for f in findings]
