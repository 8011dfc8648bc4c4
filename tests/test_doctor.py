"""The doctor names each symptom of docs/practice.md's table with the override to try -- and stays quiet on healthy runs.

Log histories are synthetic: smooth curves plus seeded noise, logged the way TRL logs them.
"""

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tinyalign import doctor
from tinyalign.doctor import diagnose

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- synthetic logs


def curve(start, end, noise=0.0, shape=lambda t: t, floor=None):
    """A metric going start -> end along `shape` (t in 0..1), with Gaussian noise of sd `noise`."""

    def value(t, rng):
        v = start + (end - start) * shape(t) + rng.gauss(0, noise)
        return v if floor is None else max(floor, v)

    return value


def lognormal(level, sigma):
    """A positive metric jittering around `level` (gradient norms are skewed like this)."""
    return lambda t, rng: level * math.exp(rng.gauss(0, sigma))


def logs(curves: dict, n=100, every=2, seed=0, spikes=()):
    """TRL-style log_history: n entries at steps every, 2*every, ...; `spikes` = [(index, key, factor)]."""
    rng = random.Random(seed)
    history = []
    for i in range(n):
        t = i / (n - 1)
        entry = {"step": (i + 1) * every, "epoch": t}
        entry.update({key: make(t, rng) for key, make in curves.items()})
        history.append(entry)
    for index, key, factor in spikes:
        history[index][key] *= factor
    return history


def fast(t):  # most of the change early, as learning curves do
    return 1 - math.exp(-4 * t)


HEALTHY_GRPO = {
    "loss": curve(0.0, 0.0, 0.01),
    "grad_norm": lognormal(0.3, 0.15),
    "learning_rate": curve(5e-6, 5e-7),
    "reward": curve(0.45, 1.2, 0.06, fast),
    "reward_std": curve(0.5, 0.35, 0.03),
    "rewards/think_format/mean": curve(0.3, 0.95, 0.04, fast),
    "rewards/think_format/std": curve(0.4, 0.2, 0.02),
    "rewards/math_accuracy/mean": curve(0.3, 0.72, 0.05, fast),
    "rewards/math_accuracy/std": curve(0.45, 0.4, 0.02),
    "kl": curve(0.0005, 0.008, 0.0008, floor=0.0),
    "entropy": curve(0.9, 0.72, 0.03),
    "completions/mean_length": curve(210, 190, 12),
    "completions/max_length": curve(400, 380, 20),
    "completions/clipped_ratio": curve(0.02, 0.01, 0.01, floor=0.0),
    "frac_reward_zero_std": curve(0.15, 0.2, 0.04, floor=0.0),
    "clip_ratio/region_mean": curve(0.0, 0.0),
}
HEALTHY_DPO = {
    "loss": curve(0.693, 0.35, 0.03, fast),
    "grad_norm": lognormal(2.0, 0.15),
    "learning_rate": curve(5e-6, 5e-7),
    "rewards/chosen": curve(0.0, 0.4, 0.05, fast),
    "rewards/rejected": curve(0.0, -0.9, 0.05, fast),
    "rewards/margins": curve(0.0, 1.3, 0.08, fast),
    "rewards/accuracies": curve(0.5, 0.85, 0.04, fast),
}
HEALTHY_SFT = {
    "loss": curve(2.4, 0.6, 0.05, fast),
    "grad_norm": lognormal(1.0, 0.15),
    "learning_rate": curve(1e-4, 1e-5),
}

GRPO_RECIPE = {
    "method": "grpo",
    "model": {"name": "Qwen/Qwen2.5-1.5B-Instruct", "quantization": "4bit", "adapter": None},
    "data": {"source": "openai/gsm8k"},
    "rewards": [{"name": "think_format", "weight": 0.5}, {"name": "math_accuracy", "weight": 1.0}],
    "train": {"learning_rate": 5.0e-6, "beta": 0.04, "max_completion_length": 512, "temperature": 1.0,
              "num_generations": 8, "max_steps": 200},
    "output_dir": "runs/math",
}
DPO_RECIPE = {"method": "dpo", "model": {"name": "m"}, "data": {"source": "prefs.sqlite"},
              "train": {"learning_rate": 5.0e-6, "beta": 0.1, "max_steps": 200}, "output_dir": "runs/dpo"}
SFT_RECIPE = {"method": "sft", "model": {"name": "m"}, "data": {"source": "d"},
              "train": {"learning_rate": 1.0e-4, "max_steps": 200}, "output_dir": "runs/sft"}


def with_evals(history, evals):
    """Append eval entries {step, eval_loss} the way Trainer interleaves them."""
    return history + [{"step": step, "eval_loss": value} for step, value in evals]


def healthy_completions(steps=200, per_step=8, every=20, seed=0):
    rng = random.Random(seed)
    rows = []
    for step in range(every, steps + 1, every):
        for k in range(per_step):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            thought = " ".join(rng.choice(["add", "the", "tens", "then", "ones", "carry", "so", "we", "get"]) for _ in range(12))
            rows.append({"step": step, "prompt": f"{a}+{b}=?", "completion": f"<think>{thought}</think> {a + b}",
                         "answer": str(a + b), "rewards": {"math_accuracy": 1.0}})
    return rows


def finding(findings, symptom):
    named = [f for f in findings if f.symptom == symptom]
    assert named, f"expected {symptom}, got {[f.symptom for f in findings]}"
    return named[0]


# ---------------------------------------------------------------- healthy runs: no findings


@pytest.mark.parametrize("seed", range(6))
def test_healthy_grpo_run_has_no_findings(seed):
    history = logs(HEALTHY_GRPO, n=100, every=2, seed=seed)
    assert diagnose(history, GRPO_RECIPE, healthy_completions(seed=seed)) == []


@pytest.mark.parametrize("seed", range(6))
def test_healthy_dpo_run_has_no_findings(seed):
    history = with_evals(logs(HEALTHY_DPO, seed=seed), [(50, 0.6), (100, 0.5), (150, 0.46), (200, 0.45)])
    assert diagnose(history, DPO_RECIPE) == []


@pytest.mark.parametrize("seed", range(6))
def test_healthy_sft_run_has_no_findings(seed):
    history = with_evals(logs(HEALTHY_SFT, seed=seed), [(50, 1.3), (100, 0.95), (150, 0.9), (200, 0.89)])
    assert diagnose(history, SFT_RECIPE) == []


def test_a_run_too_short_to_judge_gets_no_findings():
    flat = {**HEALTHY_GRPO, "reward": curve(0.1, 0.1, 0.01), "entropy": curve(0.9, 0.05)}
    assert diagnose(logs(flat, n=5), GRPO_RECIPE) == []


def test_one_hard_batch_is_not_a_spike():
    history = logs(HEALTHY_SFT, seed=1, spikes=[(60, "grad_norm", 3.0)])
    assert diagnose(history, SFT_RECIPE) == []


# ---------------------------------------------------------------- GRPO symptoms


def test_flat_low_reward_points_to_sft_first():
    history = logs({**HEALTHY_GRPO, "reward": curve(0.08, 0.09, 0.02), "kl": curve(0.002, 0.01, 0.001)})
    f = finding(diagnose(history, GRPO_RECIPE), "reward_flat")
    assert "over steps 2–200" in f.evidence
    assert "SFT first" in f.remedy and "probe" in f.remedy


def test_flat_middling_reward_suggests_a_higher_learning_rate():
    history = logs({**HEALTHY_GRPO, "reward": curve(0.6, 0.62, 0.04), "kl": curve(0.002, 0.01, 0.001)})
    assert finding(diagnose(history, GRPO_RECIPE), "reward_flat").overrides == ["train.learning_rate=1.0e-05"]


def test_falling_reward_lowers_the_learning_rate():
    history = logs({**HEALTHY_GRPO, "reward": curve(1.2, 0.7, 0.05)})
    f = finding(diagnose(history, GRPO_RECIPE), "reward_falling")
    assert f.overrides == ["train.learning_rate=2.5e-06", "train.max_grad_norm=0.2"]


def test_kl_running_away_raises_beta_and_lowers_lr():
    history = logs({**HEALTHY_GRPO, "kl": curve(0.002, 0.6, 0.01, lambda t: t * t, floor=0.0)})
    f = finding(diagnose(history, GRPO_RECIPE), "kl_runaway")
    assert f.overrides == ["train.beta=0.08", "train.learning_rate=2.5e-06"]
    assert "kl 0.0" in f.evidence and "reward" in f.evidence


def test_kl_rising_with_the_accuracy_reward_at_a_small_beta_is_learning():
    # the demo's case: beta 0.001 lets KL grow to ~0.6 nats/token while accuracy climbs; nothing is wrong
    recipe = {**GRPO_RECIPE, "train": {**GRPO_RECIPE["train"], "beta": 0.001}}
    history = logs({**HEALTHY_GRPO, "kl": curve(0.0, 0.6, 0.01, lambda t: t * t, floor=0.0)})
    assert diagnose(history, recipe) == []


def test_kl_far_from_the_reference_while_accuracy_stalls_is_runaway():
    recipe = {**GRPO_RECIPE, "train": {**GRPO_RECIPE["train"], "beta": 0.001}}
    history = logs({**HEALTHY_GRPO, "kl": curve(0.0, 0.6, 0.01, lambda t: t * t, floor=0.0),
                    "rewards/math_accuracy/mean": curve(0.4, 0.41, 0.03)})
    f = finding(diagnose(history, recipe), "kl_runaway")
    assert "without the task metric improving" in f.cause and "beta 0.001" in f.evidence


def test_kl_beyond_what_beta_allows_is_runaway_even_while_accuracy_rises():
    # 0.6 nats/token x ~190 tokens is ~110 nats per answer; at beta 0.04 the optimum stays within 1.5 / 0.04
    history = logs({**HEALTHY_GRPO, "kl": curve(0.002, 0.6, 0.01, lambda t: t * t, floor=0.0)})
    assert "beta 0.04 allows ~37.5" in finding(diagnose(history, GRPO_RECIPE), "kl_runaway").evidence


SUMS_RECIPE = {  # a small model on sums: one accuracy reward, short answers, the small beta an SFT start takes
    "method": "grpo", "model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct", "adapter": None},
    "data": {"source": "sums"}, "rewards": [{"name": "math_accuracy", "weight": 1.0}],
    "train": {"learning_rate": 1.0e-4, "beta": 0.001, "max_completion_length": 16, "num_generations": 8,
              "max_steps": 100},
    "output_dir": "runs/sums",
}
LEARNING_SUMS = {
    "loss": curve(0.0, 0.0, 0.01),
    "grad_norm": lognormal(0.3, 0.15),
    "learning_rate": curve(1e-4, 1e-5),
    "reward": curve(0.05, 0.95, 0.03, fast),
    "rewards/math_accuracy/mean": curve(0.05, 0.95, 0.03, fast),
    "entropy": curve(0.9, 0.7, 0.03),
    "completions/mean_length": curve(12, 6, 0.5),
    "completions/clipped_ratio": curve(0.6, 0.0, 0.02, fast, floor=0.0),
    "frac_reward_zero_std": curve(0.4, 0.3, 0.04, floor=0.0),
}


def test_kl_growing_to_nats_per_token_while_accuracy_rises_asks_for_the_held_out_check(tmp_path, capsys):
    # a run seen in practice: per-token KL grows exponentially 0.001 -> 4.2 while the accuracy reward rises to 0.95.
    # At ~6 tokens an answer that is a few dozen nats, well within the ~1000 beta 0.001 allows, and the metric
    # learns: kl_runaway stays silent, yet the reward alone cannot say whether the gain is real
    history = logs({**LEARNING_SUMS, "kl": lambda t, rng: 0.001 * 4200 ** t * math.exp(rng.gauss(0, 0.1))}, n=50)
    run = write_run(tmp_path / "sums", history, SUMS_RECIPE)
    doctor.main([str(run), "--json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [f["symptom"] for f in findings] == ["kl_far_while_learning"]
    f = findings[0]
    course = r"kl 0\.00\d+ → 1\.\d+ over steps 2–100 .*x the early level, still climbing \(last log 4\.\d+\)"
    assert re.match(course, f["evidence"]), f["evidence"]
    assert re.search(r"rewards/math_accuracy/mean 0\.\d+ → 0\.9\d", f["evidence"]), f["evidence"]
    assert f"python -m tinyalign.evaluate {run} --checkpoints all" in f["remedy"] and "completions.jsonl" in f["remedy"]
    assert "held-out accuracy does not follow" in f["remedy"]
    assert f["overrides"] == ["train.beta=0.002", "train.learning_rate=5.0e-05"]


def test_a_learning_run_with_modest_kl_and_single_spikes_past_a_nat_is_not_far():
    # like the corpus's lr 1e-3 and 3e-3 runs (held-out 0.35 -> 0.99 and 0.94): KL ~0.3 nats/token, one log at 1.5
    history = logs({**LEARNING_SUMS, "kl": curve(0.0, 0.3, 0.05, fast, floor=0.0)}, n=50,
                   spikes=[(30, "kl", 5.0), (44, "kl", 4.0)])
    assert max(e["kl"] for e in history) > 1.0
    assert diagnose(history, SUMS_RECIPE) == []


def test_kl_far_beyond_what_beta_allows_while_learning_is_named_once_as_runaway():
    recipe = {**SUMS_RECIPE, "train": {**SUMS_RECIPE["train"], "beta": 0.04, "max_completion_length": 64}}
    history = logs({**LEARNING_SUMS, "kl": lambda t, rng: 0.001 * 4200 ** t * math.exp(rng.gauss(0, 0.1)),
                    "completions/mean_length": curve(40, 30, 1.0)}, n=50)
    findings = diagnose(history, recipe)  # ~50 nats per answer; beta 0.04 allows ~25
    assert [f.symptom for f in findings] == ["kl_runaway"]
    assert "the updates outrun beta" in findings[0].cause and "--checkpoints all" in findings[0].remedy


def test_tiny_kl_with_flat_reward_lowers_beta_and_raises_lr():
    history = logs({**HEALTHY_GRPO, "reward": curve(0.6, 0.61, 0.03), "kl": curve(0.0001, 0.0003, 0.00005, floor=0.0)})
    findings = diagnose(history, GRPO_RECIPE)
    assert finding(findings, "kl_tiny_reward_flat").overrides == ["train.beta=0.004", "train.learning_rate=1.0e-05"]
    assert "reward_flat" not in [f.symptom for f in findings]  # one cause, named once


def test_entropy_collapse_samples_hotter_and_clips_higher():
    history = logs({**HEALTHY_GRPO, "entropy": curve(0.9, 0.08, 0.01, fast, floor=0.0)})
    f = finding(diagnose(history, GRPO_RECIPE), "entropy_collapse")
    assert f.overrides == ["train.temperature=1.2", "train.epsilon_high=0.28"]
    assert re.match(r"entropy 0\.[5-7]\d* → 0\.[01]\d* over steps 2–200", f.evidence)  # quarter medians


def test_length_drifting_to_the_cap_masks_truncated_completions():
    history = logs({**HEALTHY_GRPO, "completions/mean_length": curve(200, 490, 10),
                    "completions/clipped_ratio": curve(0.0, 0.6, 0.03, floor=0.0)})
    f = finding(diagnose(history, GRPO_RECIPE), "length_to_cap")
    assert "train.mask_truncated_completions=true" in f.overrides
    assert "max_completion_length 512" in f.evidence


def test_answers_that_are_long_from_the_start_and_never_cut_are_no_length_bias():
    # A judge writes ~53 tokens under a 64-token cap from its first step, none cut: the task's length, not a drift.
    history = logs({**HEALTHY_GRPO, "completions/mean_length": curve(425, 425, 3),
                    "completions/clipped_ratio": curve(0.0, 0.0)})
    assert "length_to_cap" not in [f.symptom for f in diagnose(history, GRPO_RECIPE)]
    # The same length reached by growing into the cap is still named.
    history = logs({**HEALTHY_GRPO, "completions/mean_length": curve(250, 460, 3),
                    "completions/clipped_ratio": curve(0.0, 0.0)})
    assert "length_to_cap" in [f.symptom for f in diagnose(history, GRPO_RECIPE)]


def test_length_to_cap_with_per_sequence_loss_switches_to_dr_grpo():
    recipe = {**GRPO_RECIPE, "train": {**GRPO_RECIPE["train"], "loss_type": "grpo"}}
    history = logs({**HEALTHY_GRPO, "completions/clipped_ratio": curve(0.1, 0.5, 0.03, floor=0.0)})
    assert "train.loss_type=dr_grpo" in finding(diagnose(history, recipe), "length_to_cap").overrides


def test_length_collapsing_to_very_short_is_named():
    recipe = {**GRPO_RECIPE, "train": {**GRPO_RECIPE["train"], "loss_type": "grpo"}}
    history = logs({**HEALTHY_GRPO, "completions/mean_length": curve(220, 15, 5, fast, floor=1)})
    assert finding(diagnose(history, recipe), "length_collapse").overrides == ["train.loss_type=dr_grpo"]


def test_groups_with_zero_reward_std_ask_for_more_generations():
    history = logs({**HEALTHY_GRPO, "reward": curve(1.4, 1.45, 0.02), "frac_reward_zero_std": curve(0.7, 0.85, 0.03),
                    "rewards/math_accuracy/mean": curve(0.95, 0.96, 0.01)})
    f = finding(diagnose(history, GRPO_RECIPE), "reward_zero_std")
    assert f.overrides == ["train.num_generations=16", "train.gradient_accumulation_steps=2"]
    assert "too easy" in f.cause


def test_groups_that_agree_because_the_run_learned_its_task_are_no_finding():
    history = logs({**HEALTHY_GRPO, "reward": curve(0.6, 1.45, 0.02), "frac_reward_zero_std": curve(0.2, 0.85, 0.03)})
    assert "reward_zero_std" not in [f.symptom for f in diagnose(history, GRPO_RECIPE)]


def test_high_clip_ratio_lowers_the_learning_rate_and_iterations():
    recipe = {**GRPO_RECIPE, "train": {**GRPO_RECIPE["train"], "num_iterations": 4}}
    history = logs({**HEALTHY_GRPO, "clip_ratio/region_mean": curve(0.05, 0.35, 0.02)})
    assert finding(diagnose(history, recipe), "clip_ratio_high").overrides == [
        "train.learning_rate=2.5e-06", "train.num_iterations=2"]


def test_grad_norm_spikes_lower_lr_and_clip_gradients():
    history = logs(HEALTHY_GRPO, seed=3, spikes=[(30, "grad_norm", 6.0), (70, "grad_norm", 4.0)])
    f = finding(diagnose(history, GRPO_RECIPE), "loss_spikes")
    assert f.overrides == ["train.learning_rate=2.5e-06", "train.max_grad_norm=0.2"]
    assert "step 62" in f.evidence


def test_format_reward_rising_while_accuracy_falls_is_reward_hacking():
    history = logs({**HEALTHY_GRPO, "rewards/math_accuracy/mean": curve(0.45, 0.25, 0.04)})
    f = finding(diagnose(history, GRPO_RECIPE), "reward_hacking")
    assert f.overrides == ["rewards.0.weight=0.25"]  # halve the gamed think_format reward
    assert "rewards/think_format/mean" in f.evidence and "rewards/math_accuracy/mean" in f.evidence


def test_format_reward_rising_while_accuracy_stays_flat_is_reward_hacking():
    history = logs({**HEALTHY_GRPO, "rewards/math_accuracy/mean": curve(0.4, 0.41, 0.03)})
    assert finding(diagnose(history, GRPO_RECIPE), "reward_hacking")


def test_format_reward_rising_while_accuracy_is_already_near_the_top_is_not_hacking():
    history = logs({**HEALTHY_GRPO, "rewards/math_accuracy/mean": curve(0.93, 0.94, 0.01)})
    assert "reward_hacking" not in [f.symptom for f in diagnose(history, GRPO_RECIPE)]


def test_accuracy_rewards_can_be_named_explicitly():
    curves = {k: v for k, v in HEALTHY_GRPO.items() if "math_accuracy" not in k}
    history = logs({**curves, "rewards/judge/mean": curve(0.6, 0.3, 0.04)})
    assert "reward_hacking" not in [f.symptom for f in diagnose(history, GRPO_RECIPE)]
    assert finding(diagnose(history, GRPO_RECIPE, accuracy_rewards=["judge"]), "reward_hacking")


def test_identical_late_completions_across_prompts():
    rows = healthy_completions()
    for row in rows:
        if row["step"] >= 160:
            row["completion"] = "<think></think> 0"
    f = finding(diagnose(logs(HEALTHY_GRPO), GRPO_RECIPE, rows), "identical_completions")
    assert "'<think></think> 0'" in f.evidence
    assert "train.epsilon_high=0.28" in f.overrides


def test_looping_late_completions_lower_the_learning_rate():
    rows = healthy_completions()
    for row in rows[-40:]:
        row["completion"] = "so the answer is " + "the answer is " * 12
    f = finding(diagnose(logs(HEALTHY_GRPO), GRPO_RECIPE, rows), "looping_completions")
    assert "train.learning_rate=2.5e-06" in f.overrides


def test_every_completion_cut_at_the_cap_with_zero_loss_learns_nothing():
    history = logs({**HEALTHY_GRPO, "completions/clipped_ratio": curve(1.0, 1.0), "loss": curve(0.0, 0.0)}, n=3)
    f = finding(diagnose(history, GRPO_RECIPE), "nothing_learned")  # said even for a run too short for trends
    assert f.cause == "nothing is learned: every completion hit max_completion_length"
    assert f.overrides == ["train.max_completion_length=1024"] and "3 of 3 logged steps" in f.evidence


def test_a_few_truncated_completions_with_a_real_loss_are_not_nothing_learned():
    history = logs({**HEALTHY_GRPO, "completions/clipped_ratio": curve(0.9, 0.9), "loss": curve(0.0, 0.0)}, n=3)
    assert "nothing_learned" not in [f.symptom for f in diagnose(history, GRPO_RECIPE)]


# ---------------------------------------------------------------- recorded real runs (bench/studies/doctor_runs)

CORPUS = REPO / "bench" / "studies" / "doctor_runs" / "tiny"


def test_the_demo_grpo_run_with_kl_rising_as_it_learns_has_no_findings():
    # recorded: beta 0.001, KL 0 -> 0.13 nats/token while exact match rose 0.32 -> 0.63 (held-out 0.35 -> 0.89)
    assert diagnose(*doctor.load_run(CORPUS / "grpo_default")) == []


def test_a_real_run_whose_every_answer_is_cut_at_the_cap_learns_nothing():
    # recorded: max_completion_length 1, truncated completions masked: loss 0, held-out 0.35 -> 0.35
    symptoms = [f.symptom for f in diagnose(*doctor.load_run(CORPUS / "grpo_cap1"))]
    assert symptoms[0] == "nothing_learned" and "length_to_cap" not in symptoms  # one cause, named first


def test_the_labeled_corpus_meets_the_doctor_goals():
    """No finding on a run whose held-out accuracy improved; >= 90 % of degraded, collapsed and hacked
    runs named with a right symptom (labels from held-out accuracy; bench/studies/doctor_corpus.py)."""
    from bench.studies import doctor_corpus as corpus

    runs, _ = corpus.score_corpus(corpus.CORPORA["tiny"])
    improved = [r for r in runs if r["label"] == "improved"]
    sick = [r for r in runs if r["label"] in corpus.SICK]
    assert len(improved) >= 3 and len(sick) >= 5, [(r["run"], r["label"]) for r in runs]
    assert [(r["run"], r["findings"]) for r in improved if r["findings"]] == []
    missed = [(r["run"], r["label"], r["findings"]) for r in sick if not set(r["findings"]) & corpus.RIGHT[r["label"]]]
    assert len(missed) <= 0.1 * len(sick), missed


def test_on_held_out_real_model_runs_the_doctor_raises_no_false_alarm_and_speaks_up_when_they_got_worse():
    """SmolLM2 GRPO runs no threshold was tuned on (bench/studies/doctor_corpus.py --corpus real). Recorded: lr 1e-4
    and 2e-4 held-out 0.47 -> 0.50 / 0.51 (no finding); lr 5e-4 (with and without beta 0.04) 0.47 -> 0.27 /
    0.25 and a gamed regex reward 0.47 -> 0.24 (kl_runaway or reward_zero_std: something, if not always the
    cause; bench/RESULTS.md says which it missed)."""
    from bench.studies import doctor_corpus as corpus

    runs, _ = corpus.score_corpus(corpus.CORPORA["real"])
    assert {r["label"] for r in runs} >= {"flat", "degraded", "hacked"}, [(r["run"], r["label"]) for r in runs]
    assert [(r["run"], r["findings"]) for r in runs if r["label"] in ("improved", "flat") and r["findings"]] == []
    assert [r["run"] for r in runs if r["label"] in corpus.SICK and not r["findings"]] == []


# ---------------------------------------------------------------- DPO and SFT symptoms


def test_dpo_margins_growing_slowly_lower_beta():
    history = logs({**HEALTHY_DPO, "loss": curve(0.693, 0.67, 0.01), "rewards/margins": curve(0.0, 0.04, 0.01)})
    f = finding(diagnose(history, DPO_RECIPE), "dpo_margins_flat")
    assert f.overrides == ["train.beta=0.05"]


def test_dpo_margins_turning_negative_lower_the_learning_rate():
    # recorded shape (bench/studies/doctor_runs/tiny/dpo_lr2e-2): margins 0 -> -0.6, pair accuracy 0.5 -> 0, held-out 0.35 -> 0
    diverged = {**HEALTHY_DPO, "rewards/margins": curve(0.0, -0.6, 0.05, fast),
                "rewards/accuracies": curve(0.5, 0.03, 0.03, fast, floor=0.0)}
    f = finding(diagnose(logs(diverged), DPO_RECIPE), "dpo_margins_falling")
    assert f.overrides == ["train.learning_rate=5.0e-07", "train.max_grad_norm=0.2"]
    # recorded (dpo_lr8e-3, held-out 0.35 -> 0.79): margins negative too, but the chosen answers grew likelier
    rescued = logs({**diverged, "logps/chosen": curve(-9.1, -1.3, 0.3, fast)})
    assert "dpo_margins_falling" not in [f.symptom for f in diagnose(rescued, DPO_RECIPE)]


def test_dpo_loss_collapsing_early_raises_beta_and_lowers_lr():
    collapse = {**HEALTHY_DPO, "loss": curve(0.693, 0.005, 0.001, lambda t: min(1.0, t * 25), floor=0.001),
                "rewards/margins": curve(0.0, 9.0, 0.2, lambda t: min(1.0, t * 25)),
                "rewards/accuracies": curve(0.5, 1.0, 0.0, lambda t: min(1.0, t * 25))}
    f = finding(diagnose(logs(collapse), DPO_RECIPE), "dpo_loss_collapse")
    assert f.overrides == ["train.beta=0.2", "train.learning_rate=2.5e-06"]
    assert "rewards/accuracies 1.00" in f.evidence


def test_sft_loss_spikes():
    history = logs(HEALTHY_SFT, seed=2, spikes=[(40, "loss", 2.5), (41, "loss", 2.2), (80, "loss", 3.0)])
    f = finding(diagnose(history, SFT_RECIPE), "loss_spikes")
    assert f.overrides == ["train.learning_rate=5.0e-05", "train.max_grad_norm=0.2"]


def test_sft_eval_loss_rising_while_train_loss_falls_is_overfitting():
    history = with_evals(logs(HEALTHY_SFT), [(50, 1.3), (100, 1.1), (150, 1.25), (200, 1.4)])
    f = finding(diagnose(history, SFT_RECIPE), "overfitting")
    assert f.overrides == ["train.max_steps=100"]


def test_without_a_recipe_the_method_is_inferred_and_lr_taken_from_the_logs():
    history = logs({**HEALTHY_GRPO, "kl": curve(0.002, 0.6, 0.01, lambda t: t * t, floor=0.0),
                    "rewards/math_accuracy/mean": curve(0.4, 0.4, 0.03)})
    f = finding(diagnose(history), "kl_runaway")
    assert f.overrides == ["train.learning_rate=2.5e-06"]  # beta is unknown without the recipe


# ---------------------------------------------------------------- the command line


def write_run(path: Path, history, recipe=None, where="trainer_state.json"):
    (path / where).parent.mkdir(parents=True, exist_ok=True)
    (path / where).write_text(json.dumps({"global_step": history[-1]["step"], "log_history": history}))
    if recipe:
        (path / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "output_dir": str(path)}))
    return path


def test_report_names_the_symptom_and_the_command_to_try(tmp_path, capsys):
    history = logs({**HEALTHY_GRPO, "kl": curve(0.002, 0.6, 0.01, lambda t: t * t, floor=0.0)})
    run = write_run(tmp_path / "math", history, GRPO_RECIPE)
    doctor.main([str(run)])
    out = capsys.readouterr().out
    assert "grpo, 200 steps, final reward" in out
    assert "kl_runaway" in out and "likely cause:" in out
    assert f"python -m tinyalign.grpo {run}/recipe.yaml train.beta=0.08 train.learning_rate=2.5e-06 output_dir={run}-kl_runaway" in out


def test_report_reads_the_newest_checkpoint_while_training(tmp_path, capsys):
    history = logs({**HEALTHY_GRPO, "entropy": curve(0.9, 0.05, 0.01, fast, floor=0.0)})
    write_run(tmp_path, history[:20], where="checkpoint-40/trainer_state.json")
    write_run(tmp_path, history, where="checkpoint-200/trainer_state.json")
    doctor.main([str(tmp_path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "grpo" and result["summary"].startswith("grpo, 200 steps")
    assert [f["symptom"] for f in result["findings"]] == ["entropy_collapse"]
    assert result["findings"][0]["overrides"] == ["train.epsilon_high=0.28"]  # temperature unknown without a recipe


def test_healthy_run_reports_no_findings(tmp_path, capsys):
    run = write_run(tmp_path, logs(HEALTHY_SFT), SFT_RECIPE)
    doctor.main([str(run)])
    assert "no findings" in capsys.readouterr().out


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_missing_run_or_logs_is_one_line_exit_2(tmp_path, make):
    result = subprocess.run([sys.executable, "-m", "tinyalign.doctor", str(make(tmp_path))],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(tmp_path) in result.stderr


# ---------------------------------------------------------------- while training


def test_callback_warns_once_per_symptom(tmp_path, capsys):
    callback = doctor.DoctorCallback(GRPO_RECIPE, every=10)
    args = SimpleNamespace(output_dir=str(tmp_path))
    history = logs({**HEALTHY_GRPO, "kl": curve(0.002, 0.6, 0.01, lambda t: t * t, floor=0.0)})
    for entry in history:
        state = SimpleNamespace(global_step=entry["step"])
        callback.on_log(args, state, None, logs={k: v for k, v in entry.items() if k != "step"})
    callback.on_train_end(args, state, None)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("doctor: kl_runaway")]
    assert len(warnings) == 1
    assert "at step" in warnings[0] and "raise beta" in warnings[0] and "train.beta=0.08" in warnings[0]


def test_the_verdict_at_the_end_names_a_dip_the_run_recovered_from_apart(tmp_path, capsys):
    # a reward model continued on twice the pairs (the loop's round 2): its margins dip, then grow past where
    # they began (logged every 5 steps, runs/loop-dpo/s0/rm-r2 on SmolLM2's sums; 96.4 % held out)
    margins = [3.49, 3.25, 1.92, 2.09, 2.24, 2.67, 2.38, 2.08, 1.53, 1.45, 1.87, 3.3, 2.98, 2.69, 2.07, 2.1, 2.68,
               3.06, 3.68, 3.58, 3.21, 3.19, 3.41, 3.3, 3.36, 3.42, 4.0, 3.88, 4.27, 3.67, 3.7, 4.03, 4.13, 4.04,
               4.13, 4.58, 4.22]
    callback = doctor.DoctorCallback({"method": "rm", "train": {"learning_rate": 5e-4}}, every=5)
    args = SimpleNamespace(output_dir=str(tmp_path))
    for step, margin in enumerate(margins, 1):
        state = SimpleNamespace(global_step=5 * step)
        callback.on_log(args, state, None, logs={"loss": 0.3, "margin": margin})
    callback.finish(args, state)  # what tinyalign.rm calls once the held-out pairs are scored
    err = capsys.readouterr().err
    assert "doctor: rm_margins_collapsing at step 50" in err  # said when it showed
    assert "doctor: no symptoms in the logs; warned during the run, gone by its end: rm_margins_collapsing" in err


def test_callback_says_at_once_when_a_step_learns_nothing(capsys):
    callback = doctor.DoctorCallback(GRPO_RECIPE, every=10)
    state = SimpleNamespace(global_step=1, is_world_process_zero=True)
    callback.on_log(SimpleNamespace(output_dir=None), state, None,
                    logs={"loss": 0.0, "completions/clipped_ratio": 1.0, "reward": 0.0})
    assert "doctor: nothing_learned at step 1: nothing is learned: every completion hit max_completion_length" \
        in capsys.readouterr().err


def test_callback_never_raises_into_training(capsys):
    callback = doctor.DoctorCallback({"method": "grpo", "train": "not a mapping"}, every=1)
    state = SimpleNamespace(global_step=1)
    callback.on_log(SimpleNamespace(output_dir=None), state, None, logs={"reward": 0.1})
    callback.on_train_end(SimpleNamespace(output_dir=None), state, None)
    assert "doctor: skipped a check" in capsys.readouterr().err


def test_callback_is_a_trainer_callback():
    from transformers import TrainerCallback

    assert isinstance(doctor.DoctorCallback(), TrainerCallback)


def test_the_trl_defaults_the_checks_fall_back_on_are_read_from_trl_when_first_asked():
    import dataclasses

    import trl

    from tinyalign.core.run_logs import trl_defaults

    fields = {f.name: f.default for f in dataclasses.fields(trl.GRPOConfig)}
    assert trl_defaults("grpo")["loss_type"] == fields["loss_type"] and trl_defaults("grpo")["beta"] == fields["beta"]
    assert set(trl_defaults("dpo")) == {"learning_rate", "beta", "max_grad_norm"} and trl_defaults("rm") == {}
    code = "import sys, tinyalign.core.run_logs; assert 'trl' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


JUDGE_RECIPE = {**GRPO_RECIPE, "rewards": [{"name": "pairwise_judge", "judge": "runs/judge", "checker": "math_accuracy"}]}


@pytest.mark.parametrize("late, named", [(0.45, True), (0.8, False)])
def test_a_judge_the_checker_stops_backing_is_named_gamed(late, named):
    history = logs({**HEALTHY_GRPO, "pairwise_judge/checker_agreement": curve(0.9, late, 0.02)}, n=40)
    findings = diagnose(history, JUDGE_RECIPE)
    assert ("judge_gamed" in {f.symptom for f in findings}) == named, [f.symptom for f in findings]
    if named:
        found = finding(findings, "judge_gamed")
        assert "checker_agreement" in found.evidence and found.overrides == ["rewards.0.weight=0.5"]

