"""The symptoms -> remedies table as code: one small check per symptom over a run's logs.

Each check looks at one signal and returns a Finding (what the logs show, the likely cause, the remedy
and the recipe overrides to try) or None. Single logged values are noisy, so trends are judged robustly
— medians of the first vs the last quarter of the run, least-squares slopes, spikes against a trailing
median + MAD — and a healthy run comes back with no findings at all. Symptoms that are only trouble when
the run is not learning (KL far from the reference, entropy low, groups that all agree) are judged
against the task metric's course in the logs: the accuracy reward, else the total. The thresholds are
checked on a labeled corpus of real runs: bench/doctor_corpus.py.

    grpo.py          GRPO runs: reward, KL, entropy, length, groups, clip, hacking, sampled completions
    dpo.py           DPO runs: margins, a loss that collapses
    loss.py          any run: loss spikes, overfitting
    reward_model.py  reward-model runs, and GRPO runs on a learned reward

How the logs are read and a course is judged lives in tinyalign.core.run_logs; `tinyalign.doctor` reads run
directories, reports, and warns while training.
"""

from pathlib import Path

from tinyalign import rewards
from tinyalign.core.run_logs import Run
from tinyalign.symptoms.common import Finding
from tinyalign.symptoms.dpo import dpo_loss_collapse, dpo_margins_falling, dpo_margins_flat
from tinyalign.symptoms.grpo import (
    clip_ratio_high,
    entropy_collapse,
    kl_far_while_learning,
    kl_runaway,
    kl_tiny_reward_flat,
    length_collapse,
    length_to_cap,
    nothing_learned,
    reward_falling,
    reward_flat,
    reward_hacking,
    reward_zero_std,
)
from tinyalign.symptoms.loss import loss_spikes, overfitting
from tinyalign.symptoms.reward_model import (
    judge_gamed,
    rm_at_chance,
    rm_hacked,
    rm_margins_collapsing,
    rm_tracks_length,
)
from tinyalign.symptoms.samples import identical_completions, looping_completions

__all__ = ["CHECKS", "METHODS", "RECIPE_CHECKS", "Finding", "Run", "diagnose", "infer_method", "nothing_learned"]

METHODS = ("sft", "dpo", "grpo")

# The symptoms -> remedies table, per method, in the order a report lists them.
CHECKS = {
    "grpo": [nothing_learned, reward_flat, reward_falling, kl_runaway, kl_far_while_learning, kl_tiny_reward_flat,
             entropy_collapse, length_to_cap, length_collapse, reward_zero_std, clip_ratio_high, loss_spikes,
             reward_hacking, identical_completions, looping_completions],
    "dpo": [dpo_margins_flat, dpo_margins_falling, dpo_loss_collapse, loss_spikes, overfitting],
    "sft": [loss_spikes, overfitting],
}
# Checks that need the recipe to say what was trained (a reward model's logs read like SFT's), after the above.
RECIPE_CHECKS = {
    "rm": [rm_at_chance, rm_margins_collapsing, rm_tracks_length],
    "grpo": [rm_hacked, judge_gamed],
}


def diagnose(log_history, recipe: "dict | None" = None, completions: "list[dict] | None" = None, *,
             accuracy_rewards=(), run_dir=None) -> list[Finding]:
    """Run every check for the run's method over TRL's `log_history` (a list of dicts with `step`).

    `recipe` is the resolved recipe dict (method, rewards, train); it makes the overrides concrete.
    `completions` are GRPO samples ({step, prompt, completion, answer, rewards}). `accuracy_rewards` names
    the rewards that measure correctness, beyond the recipe's accuracy-kind rewards and those whose name
    says accuracy / exact_match. `run_dir`, when the run is on disk, holds a reward model's held-out figures.
    """
    history = [e for e in log_history or [] if isinstance(e, dict)]
    recipe = recipe or {}
    accuracy = (*accuracy_rewards, *(r.__name__ for r in rewards.accuracy_rewards(_reward_specs(recipe))))
    run = Run(history, recipe, list(completions or []), infer_method(history, recipe), accuracy,
              Path(run_dir) if run_dir else None)
    checks = CHECKS[run.method] + RECIPE_CHECKS.get(recipe.get("method"), [])
    return [finding for check in checks if (finding := check(run))]


def _reward_specs(recipe: dict) -> list:
    specs = recipe.get("rewards")
    return specs if isinstance(specs, list) else []


def infer_method(log_history, recipe: "dict | None" = None) -> str:
    if recipe and recipe.get("method") in METHODS:
        return recipe["method"]
    keys = {k for e in log_history for k in e}
    if "reward" in keys or "frac_reward_zero_std" in keys:
        return "grpo"
    if "rewards/margins" in keys or "rewards/chosen" in keys:
        return "dpo"
    return "sft"
