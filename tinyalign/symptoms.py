"""The symptoms -> remedies table (DESIGN.md section 5) as code: one small check per symptom over a run's logs.

Each check looks at one signal and returns a Finding (what the logs show, the likely cause, the remedy
and the recipe overrides to try) or None. Single logged values are noisy, so trends are judged robustly
— medians of the first vs the last quarter of the run, least-squares slopes, spikes against a trailing
median + MAD — and a healthy run comes back with no findings at all. Symptoms that are only trouble when
the run is not learning (KL far from the reference, entropy low, groups that all agree) are judged
against the task metric's course in the logs: the accuracy reward, else the total. The thresholds are
checked on a labeled corpus of real runs: bench/doctor_corpus.py. How the logs are read and a course is
judged lives in tinyalign.run_logs; `tinyalign.doctor` reads run directories, reports, and warns while
training.
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from statistics import median

from .run_logs import LEARNING_RISE, MAD_TO_SIGMA, TRL_DEFAULTS, Run, Trend, number

METHODS = ("sft", "dpo", "grpo")

# ---------------------------------------------------------------- thresholds (why each value)

REWARD_FLAT_RISE = 0.05  # reward gained < 5 % of its scale (sum of |weights|) over the run: flat
REWARD_FALL = 0.10  # reward lost >= 10 % of its scale: beyond what noise in quarter medians explains
REWARD_LOW_LEVEL = 0.20  # flat under 20 % of the scale: the model rarely solves a task (the probe's line)
REWARD_SATURATED = 0.90  # flat above 90 %: nothing left to learn, not a training problem

KL_RUNAWAY_MIN = 0.1  # 0.1 nats/token is far from the reference for a real model's long answers; with a tiny
KL_RUNAWAY_GROWTH = 10.0  # beta it is fine while the metric improves. 10x the early level: still climbing
KL_EARLY_FLOOR = 1e-3  # KL starts at exactly 0 (policy == reference); compare growth against this at least
KL_HUGE = 1.0  # >= 1 nat/token is runaway whatever it started at
KL_TINY = 1e-3  # with a flat reward, a KL this small means the policy is hardly allowed to move

ENTROPY_COLLAPSE_RATIO = 0.3  # healthy runs lose 10-40 % of their entropy; under 30 % left is near-greedy ...
CONVERGED_LEVEL = 0.75  # ... unless the metric rose to 75 %+: tasks with one right answer converge on it

LENGTH_NEAR_CAP = 0.8  # mean length >= 80 % of max_completion_length: the cap, not the task, shapes answers
CLIPPED_HIGH = 0.2  # >= 20 % of completions truncated: their rewards are mostly noise
LENGTH_COLLAPSE_RATIO = 0.3  # mean length under 30 % of its early level: answers cut to the bone

ZERO_STD_HIGH = 0.5  # over half the groups score all alike: zero advantage, they teach GRPO nothing

CLIP_RATIO_HIGH = 0.2  # > 20 % of tokens hit the PPO clip: each step moves too far from the sampler

SPIKE_WINDOW = 10  # a value's jump is measured from the median of the 10 logs before (trailing: a falling loss is no spike)
SPIKE_MIN_HISTORY = 5  # need this many previous values before a jump can be measured
SPIKE_MADS = 6.0  # a spike's jump is 6 robust sigmas (1.4826 x MAD) of the run's own jumps: noise essentially never is
SPIKE_RATIO = 2.0  # ... and at least 2x the trailing median, so a very steady series' wobble does not count
SPIKE_MIN_COUNT = 2  # one hard batch happens; two spikes are a pattern ...
SPIKE_LONE_RATIO = 5.0  # ... and so is a single spike of 5x or more

HACK_RISE = 0.10  # a non-accuracy reward (0..1 scale) gaining >= 0.1 ...
HACK_ACCURACY_GAIN = 0.05  # ... while the accuracy reward gains under 0.05 (and is not near the top): hacking

LATE_COMPLETIONS_MIN = 16  # judge sampled completions only with this many from the last quarter of steps
IDENTICAL_SHARE = 0.6  # one completion text is >= 60 % of the late samples ...
IDENTICAL_MIN_PROMPTS = 3  # ... across >= 3 different prompts: one answer for every question
LOOP_SHARE = 0.3  # >= 30 % of late completions loop
LOOP_DISTINCT = 0.3  # a completion loops when under 30 % of its 4-grams are distinct (prose is > 90 %)
LOOP_MIN_WORDS = 16  # count word 4-grams from 16 words up ...
LOOP_MIN_CHARS = 32  # ... else character 4-grams from 32 characters up; shorter answers cannot loop

DPO_MARGIN_FLAT_NATS = 1.0  # margins / beta (chosen-vs-rejected log-ratio gap) gaining < 1 nat: flat
DPO_LOSS_COLLAPSED = 0.05  # DPO loss starts at ln 2 = 0.69; under 0.05 every pair is separated
DPO_FAST_FRACTION = 0.1  # ... reached within the first 10 % of training: the policy jumped, it did not learn

OVERFIT_MIN_EVALS = 3  # eval loss needs a best point and a later worse one
OVERFIT_RISE = 0.05  # eval loss 5 % above its best while train loss kept falling


# ---------------------------------------------------------------- what a check finds


@dataclass
class Finding:
    """One symptom: what the logs show, why it likely happens, and what to try."""

    symptom: str
    evidence: str
    cause: str
    remedy: str
    overrides: list[str] = field(default_factory=list)  # recipe overrides in CLI form: train.beta=0.01


# ---------------------------------------------------------------- GRPO checks


def reward_flat(run: Run) -> "Finding | None":
    reward = _flat_reward(run)
    if reward is None or _kl_tiny(run):  # kl_tiny_reward_flat names the cause more precisely
        return None
    level = reward.last / run.reward_scale
    if level < REWARD_LOW_LEVEL:
        cause = "capability ceiling: the model rarely earns the reward, so few groups carry a learning signal"
        remedy = ("probe the start model (pass@1 well under 20 % or pass@k near 0 means RL cannot lift it): SFT first "
                  "(a rejection-sampled cold start), start GRPO from that adapter (model.adapter=<sft run dir>), "
                  "simplify the prompts, or take a bigger model")
        overrides = []  # no recipe value fixes a capability ceiling
    else:
        cause = "learning too slowly: the learning rate is low for LoRA, or too few groups disagree"
        remedy = "raise the learning rate (GRPO with LoRA takes ~1e-5); if the probe's pass@k is low, SFT first"
        overrides = _scale(run, "learning_rate", 2)
    evidence = f"{reward}; at {level:.0%} of the reward scale {run.reward_scale:g}"
    return Finding("reward_flat", evidence, cause, remedy, overrides)


def reward_falling(run: Run) -> "Finding | None":
    reward = run.trend("reward")
    if reward is None:
        return None
    # A fall from where the run started, clear of noise, shows at any length; a slow slide only in a long run.
    fall = reward.last - reward.start
    early = fall <= -REWARD_FALL * run.reward_scale and reward.beyond_noise(fall, first=2)
    if not (early or (run.long_enough(reward) and _changed(reward, -REWARD_FALL * run.reward_scale))):
        return None
    return Finding(
        "reward_falling", str(reward),
        "the updates are too large: the policy is being pushed off what it already did well",
        "lower the learning rate and clip gradients harder",
        _scale(run, "learning_rate", 0.5) + _clip_gradients(run),
    )


def kl_runaway(run: Run) -> "Finding | None":
    """KL far from the reference that buys nothing. KL rising while the accuracy reward rises is learning,
    however small beta is; it is judged against beta (what the KL-regularised optimum could reach) and
    the course of the metric, not against a fixed level."""
    kl = run.trend("kl")
    if kl is None:
        return None
    growth = kl.last / max(kl.first, KL_EARLY_FLOOR)
    far = kl.last >= KL_HUGE or (kl.last >= KL_RUNAWAY_MIN and growth >= KL_RUNAWAY_GROWTH)
    beta, length = number(run.setting("beta")), run.trend("completions/mean_length")
    per_answer = kl.last * (length.last if length else 1.0)
    # The optimum of reward - beta * KL moves at most reward_range / beta nats per answer from the reference.
    over_budget = bool(beta) and per_answer > run.reward_scale / beta
    metric = run.metric_trend()
    if not (over_budget or (far and not run.learning())):
        return None
    evidence = (f"{kl}; {growth:.0f}x the early level; ~{per_answer:.2g} nats per answer"
                + (f" (beta {beta:g} allows ~{run.reward_scale / beta:.3g})" if beta else "")
                + (f"; {metric}" if metric else ""))
    if metric is not None and _changed(metric, -LEARNING_RISE * run.metric_scale(metric)):
        cause = "the updates are too large: the policy leaves the reference and loses what it could do"
    else:
        cause = "the policy is drifting far from the reference without the task metric improving"
    return Finding(
        "kl_runaway", evidence, cause,
        "raise beta and lower the learning rate; read the latest completions for degenerate or gamed answers",
        _scale(run, "beta", 2) + _scale(run, "learning_rate", 0.5),
    )


def kl_tiny_reward_flat(run: Run) -> "Finding | None":
    reward = _flat_reward(run)
    if reward is None or not _kl_tiny(run):
        return None
    return Finding(
        "kl_tiny_reward_flat", f"{run.trend('kl')}; {reward}",
        "over-constrained: beta holds the policy at the reference, or the learning rate is too low to move it",
        "lower beta and raise the learning rate",
        _scale(run, "beta", 0.1) + _scale(run, "learning_rate", 2),
    )


def entropy_collapse(run: Run) -> "Finding | None":
    entropy = _collapsed(run, "entropy", ENTROPY_COLLAPSE_RATIO)
    metric = run.metric_trend()
    if entropy is None or (metric and metric.last >= CONVERGED_LEVEL * run.metric_scale(metric) and run.learning()):
        return None  # converged, while learning, on answers that are mostly right: not premature
    return Finding(
        "entropy_collapse", f"{entropy}; {entropy.last / entropy.first:.0%} of the early level",
        "premature convergence: sampling is near-greedy, so answers come out alike and groups stop exploring",
        f"sample hotter and let rare tokens grow (clip-higher); or add an entropy bonus "
        f"(train.use_adaptive_entropy=true train.entropy_target={_yaml(entropy.first / 2)})",
        _explore_more(run),
    )


def length_to_cap(run: Run) -> "Finding | None":
    length, clipped = run.trend("completions/mean_length"), run.trend("completions/clipped_ratio")
    cap = number(run.setting("max_completion_length"))
    if cap is None and run.points("completions/max_length") and clipped and max(clipped.values) > 0:
        cap = max(v for _, v in run.points("completions/max_length"))  # a truncated completion is cap long
    near_cap = length is not None and cap and length.last >= LENGTH_NEAR_CAP * cap
    truncating = clipped is not None and clipped.last >= CLIPPED_HIGH
    if not (near_cap or truncating) or nothing_learned(run):  # that names the cause: nothing is learned at all
        return None
    evidence = "; ".join(str(t) for t in (length, clipped) if t) + (f"; max_completion_length {cap:g}" if cap else "")
    return Finding(
        "length_to_cap", evidence,
        "length bias: the rewards (or a sequence-normalised loss) pay for longer answers, which now hit the cap",
        "add an overlong penalty reward (soft, over the last ~20 % of the cap), mask truncated completions, "
        "use a length-neutral loss; raise max_completion_length only if the task truly needs longer answers",
        _length_neutral(run) + ([] if run.setting("mask_truncated_completions") else ["train.mask_truncated_completions=true"]),
    )


def length_collapse(run: Run) -> "Finding | None":
    length = _collapsed(run, "completions/mean_length", LENGTH_COLLAPSE_RATIO)
    if length is None:
        return None
    return Finding(
        "length_collapse", f"{length}; {length.last / length.first:.0%} of the early length",
        "length bias: a reward (format, penalties) or a sequence-normalised loss pays for short answers",
        "check which reward rose as length fell (completions.jsonl); use a length-neutral loss; "
        "make format rewards require the reasoning they expect",
        _length_neutral(run),
    )


def reward_zero_std(run: Run) -> "Finding | None":
    zero_std = run.trend("frac_reward_zero_std")
    if zero_std is None or zero_std.last < ZERO_STD_HIGH:
        return None
    if run.learning() or run.unlearning():
        return None  # learning: the groups that disagree carry it; unlearning: all-fail groups are its result
    reward = run.trend("reward")
    if reward and reward.last >= REWARD_SATURATED * run.reward_scale:
        cause = "the tasks are too easy: every answer in a group earns the full reward"
        remedy = "use harder prompts (filter out those the model always solves)"
    elif reward and reward.last <= REWARD_LOW_LEVEL * run.reward_scale:
        cause = "the tasks are too hard: no answer in a group earns anything"
        remedy = "probe the start model; SFT first, or use easier prompts (easy -> hard)"
    else:
        cause = "the tasks are mostly all-solved or all-failed for this model"
        remedy = "probe per prompt and keep the ones solved sometimes; a finer-grained (partial-credit) reward"
    return Finding(
        "reward_zero_std", f"{zero_std} (share of groups whose answers all scored the same)",
        cause, remedy + "; more generations per prompt make a disagreeing answer likelier",
        _more_generations(run),
    )


def clip_ratio_high(run: Run) -> "Finding | None":
    clip = run.trend("clip_ratio/region_mean")
    if clip is None or clip.last < CLIP_RATIO_HIGH:
        return None
    iterations = number(run.setting("num_iterations")) or 1
    return Finding(
        "clip_ratio_high", f"{clip} (share of tokens whose probability ratio hit the clip)",
        "each update moves the policy far from the one that sampled: learning rate too high or too many iterations",
        "lower the learning rate; fewer updates per generation batch",
        _scale(run, "learning_rate", 0.5) + ([f"train.num_iterations={max(1, int(iterations) // 2)}"] if iterations > 1 else []),
    )


def reward_hacking(run: Run) -> "Finding | None":
    """A non-accuracy reward (format, judge, learned) rising while the accuracy reward does not: the gain
    is not bought by correctness. Without an accuracy reward in the logs there is nothing to judge by."""
    names = run.reward_names
    accuracy = [n for n in names if run.is_accuracy(n)]
    trends = {n: t for n in names if (t := run.trend(f"rewards/{n}/mean"))}
    rising = [t for n, t in trends.items() if n not in accuracy and _changed(t, HACK_RISE)]
    held = [t for n, t in trends.items() if n in accuracy]
    if not rising or not held:
        return None
    # Accuracy kept up (rose with it) or was already near the top: the other reward rose for free.
    if any(t.last - t.first >= HACK_ACCURACY_GAIN or t.last >= REWARD_SATURATED for t in held):
        return None
    overrides = []
    for t in rising:  # take weight off what is being gamed until the missing rule is in
        name = t.name[len("rewards/") : -len("/mean")]
        index = run.reward_index(name)
        if index is not None:
            weight = number(run.recipe["rewards"][index].get("weight", 1.0)) or 1.0
            overrides.append(f"rewards.{index}.weight={_yaml(weight / 2)}")
    return Finding(
        "reward_hacking", "; ".join(str(t) for t in rising + held),
        "reward hacking: the rising reward pays for something other than correct answers",
        "read completions with a high total reward but accuracy 0 (completions.jsonl); add the rule they slip "
        "past, split the reward into dimensions, and weight accuracy above the rest",
        overrides,
    )


def nothing_learned(run: Run) -> "Finding | None":
    """Steps where every completion was cut off at the cap and the loss was exactly 0: masked truncated
    completions (or all-equal rewards) leave no gradient. Usually generation never stops: the model's end
    of turn is not the token generation stops on."""
    cut = [int(e.get("step", 0)) for e in run.history
           if number(e.get("completions/clipped_ratio")) == 1.0 and number(e.get("loss")) == 0.0]
    if not cut:
        return None
    logged = sum(1 for e in run.history if "completions/clipped_ratio" in e)
    cap = number(run.setting("max_completion_length"))
    return Finding(
        "nothing_learned", f"completions/clipped_ratio 1 and loss 0 at {len(cut)} of {logged} logged steps "
                           f"(first at step {cut[0]})",
        "nothing is learned: every completion hit max_completion_length",
        "check that generation stops at the chat template's end of turn (the tokenizer's eos may be another "
        "token); raise max_completion_length only if answers truly need more room",
        [f"train.max_completion_length={int(cap) * 2}"] if cap else [],
    )


def identical_completions(run: Run) -> "Finding | None":
    late, since = _late_completions(run.completions)
    if len(late) < LATE_COMPLETIONS_MIN:
        return None
    texts = [_text(c).strip() for c in late]
    top, count = Counter(texts).most_common(1)[0]
    prompts = {str(c.get("prompt")) for c, t in zip(late, texts) if t == top}
    if count < IDENTICAL_SHARE * len(late) or len(prompts) < IDENTICAL_MIN_PROMPTS:
        return None
    return Finding(
        "identical_completions",
        f"{count} of {len(late)} completions since step {since} are the same text, across {len(prompts)} prompts: {top[:60]!r}",
        "premature convergence, or a reward that pays one easy answer everywhere (a common label, an empty format)",
        "sample hotter and clip higher; add the rule that makes this answer wrong where it is wrong",
        _explore_more(run),
    )


def looping_completions(run: Run) -> "Finding | None":
    late, since = _late_completions(run.completions)
    if len(late) < LATE_COMPLETIONS_MIN:
        return None
    loops = [c for c in late if _loops(_text(c))]
    if len(loops) < LOOP_SHARE * len(late):
        return None
    return Finding(
        "looping_completions",
        f"{len(loops)} of {len(late)} completions since step {since} repeat themselves, e.g. {_text(loops[0])[:60]!r}",
        "the learning rate is too high: the policy degenerates into repetition / gibberish",
        "lower the learning rate and clip gradients; a repetition penalty reward helps once it is stable",
        _scale(run, "learning_rate", 0.5) + _clip_gradients(run),
    )


# ---------------------------------------------------------------- DPO checks


def dpo_margins_flat(run: Run) -> "Finding | None":
    margins = run.trend("rewards/margins")
    beta = number(run.setting("beta")) or TRL_DEFAULTS["dpo"]["beta"]
    if margins is None or not run.long_enough(margins) or (margins.last - margins.first) / beta >= DPO_MARGIN_FLAT_NATS:
        return None
    return Finding(
        "dpo_margins_flat", f"{margins}; {(margins.last - margins.first) / beta:.2g} nats of log-ratio gap at beta {beta:g}",
        "beta too high: the policy is held so close to the reference that chosen and rejected barely separate",
        "lower beta; check that chosen and rejected really differ (votes, not ties)",
        _scale(run, "beta", 0.5),
    )


def dpo_margins_falling(run: Run) -> "Finding | None":
    """Margins below zero and falling, and the chosen answers no likelier than at the start: the policy has
    come to prefer the rejected answers. (Negative margins alone are not enough: with near-miss rejected
    answers and an SFT term, both answers can grow likelier, the rejected faster, while the model improves.)"""
    margins, accuracy, chosen = run.trend("rewards/margins"), run.trend("rewards/accuracies"), run.trend("logps/chosen")
    if margins is None or margins.last >= 0 or (chosen and chosen.last > chosen.start):
        return None
    fall = margins.last - margins.start
    if not (fall < 0 and margins.beyond_noise(fall, first=2)) or (accuracy and accuracy.last >= 0.5):
        return None
    return Finding(
        "dpo_margins_falling", f"{margins}" + (f"; {accuracy} (pairs where chosen beats rejected)" if accuracy else "")
        + (f"; {chosen}" if chosen else ""),
        "the updates are too large: training diverged and the policy now prefers the rejected answers",
        "lower the learning rate (DPO with LoRA: ~5e-6 … 5e-5) and clip gradients",
        _scale(run, "learning_rate", 0.1) + _clip_gradients(run),
    )


def dpo_loss_collapse(run: Run) -> "Finding | None":
    loss = run.trend("loss")
    if loss is None:
        return None
    for i in range(len(loss.values) - 2):  # the median of 3 logs, so one lucky batch is not a collapse
        if median(loss.values[i : i + 3]) < DPO_LOSS_COLLAPSED:
            step = loss.steps[i]
            break
    else:
        return None
    if step > DPO_FAST_FRACTION * run.total_steps:
        return None
    accuracy = run.points("rewards/accuracies")
    return Finding(
        "dpo_loss_collapse",
        f"loss {loss.values[0]:.3g} → {loss.values[i]:.3g} by step {step} ({step / run.total_steps:.0%} of {run.total_steps} steps)"
        + (f"; rewards/accuracies {accuracy[-1][1]:.2f}" if accuracy else ""),
        "beta too low or learning rate too high: the policy separates the pairs by leaving the reference, "
        "and outputs often get worse than the SFT model's",
        "raise beta and lower the learning rate (DPO: 1e-7 … 5e-6); compare samples with the SFT adapter",
        _scale(run, "beta", 2) + _scale(run, "learning_rate", 0.5),
    )


# ---------------------------------------------------------------- checks for every method


def loss_spikes(run: Run) -> "Finding | None":
    # GRPO's loss sits near 0 and changes sign, so ratios to its median mean nothing: use the gradient norm.
    keys = ["grad_norm"] + (["loss"] if run.method == "sft" else [])
    found = []
    for key in keys:
        trend = run.trend(key)
        spikes = _spikes(trend) if trend else []
        if len(spikes) >= SPIKE_MIN_COUNT or any(ratio >= SPIKE_LONE_RATIO for _, _, ratio in spikes):
            found.append(f"{key}: {len(spikes)} spike(s), e.g. {spikes[0][1]:.3g} at step {spikes[0][0]} "
                         f"({spikes[0][2]:.1f}x the median of the {SPIKE_WINDOW} logs before)")
    if not found:
        return None
    return Finding(
        "loss_spikes", "; ".join(found),
        "the learning rate is too high for this batch size (early repetition / gibberish comes with it)",
        "lower the learning rate and clip gradients harder; a larger effective batch smooths the updates",
        _scale(run, "learning_rate", 0.5) + _clip_gradients(run),
    )


def overfitting(run: Run) -> "Finding | None":
    evals = run.points("eval_loss")
    if len(evals) < OVERFIT_MIN_EVALS:
        return None
    best_step, best = min(evals, key=lambda p: p[1])
    last_step, last = evals[-1]
    train = run.points("loss")
    before = [v for s, v in train if s <= best_step][-3:]
    after = [v for s, v in train if s <= last_step][-3:]
    if last < best * (1 + OVERFIT_RISE) or not before or median(after) >= median(before):
        return None
    return Finding(
        "overfitting",
        f"eval_loss {best:.3g} at step {best_step} → {last:.3g} at step {last_step} while train loss "
        f"{median(before):.3g} → {median(after):.3g}",
        "overfitting: the model memorises the training set past step " + str(best_step),
        f"keep the checkpoint nearest step {best_step} (judge checkpoints by the task metric), or stop there; "
        "more diverse data, weight decay or a lower learning rate push the turn later",
        [f"train.max_steps={best_step}"],
    )


# The symptoms -> remedies table, per method, in the order a report lists them.
CHECKS = {
    "grpo": [nothing_learned, reward_flat, reward_falling, kl_runaway, kl_tiny_reward_flat, entropy_collapse,
             length_to_cap, length_collapse, reward_zero_std, clip_ratio_high, loss_spikes, reward_hacking,
             identical_completions, looping_completions],
    "dpo": [dpo_margins_flat, dpo_margins_falling, dpo_loss_collapse, loss_spikes, overfitting],
    "sft": [loss_spikes, overfitting],
}


def diagnose(log_history, recipe: "dict | None" = None, completions: "list[dict] | None" = None, *,
             accuracy_rewards=()) -> list[Finding]:
    """Run every check for the run's method over TRL's `log_history` (a list of dicts with `step`).

    `recipe` is the resolved recipe dict (method, rewards, train); it makes the overrides concrete.
    `completions` are GRPO samples ({step, prompt, completion, answer, rewards}). `accuracy_rewards` names
    the rewards that measure correctness, beyond those whose name says accuracy / exact_match.
    """
    history = [e for e in log_history or [] if isinstance(e, dict)]
    run = Run(history, recipe or {}, list(completions or []), infer_method(history, recipe), tuple(accuracy_rewards))
    return [finding for check in CHECKS[run.method] if (finding := check(run))]


def infer_method(log_history, recipe: "dict | None" = None) -> str:
    if recipe and recipe.get("method") in METHODS:
        return recipe["method"]
    keys = {k for e in log_history for k in e}
    if "reward" in keys or "frac_reward_zero_std" in keys:
        return "grpo"
    if "rewards/margins" in keys or "rewards/chosen" in keys:
        return "dpo"
    return "sft"


# ---------------------------------------------------------------- small helpers the checks share


def _flat_reward(run: Run) -> "Trend | None":
    """The reward trend when it barely moved over enough steps and is not already at the top."""
    reward = run.trend("reward")
    if reward is None or not run.long_enough(reward):
        return None
    # Flat by both measures: the quarter medians, and the least-squares line over the whole run.
    moved = max(abs(reward.last - reward.first), abs(reward.slope * reward.span)) >= REWARD_FLAT_RISE * run.reward_scale
    saturated = reward.last >= REWARD_SATURATED * run.reward_scale
    return None if moved or saturated else reward


def _collapsed(run: Run, key: str, ratio: float) -> "Trend | None":
    """The trend of a positive metric whose last quarter fell under `ratio` of its first."""
    trend = run.trend(key)
    return trend if trend and trend.first > 0 and trend.last < ratio * trend.first else None


def _changed(trend: Trend, by: float) -> bool:
    """Moved at least `by` (negative: fell by at least -by) from the first to the last quarter, beyond noise."""
    change = trend.last - trend.first
    return (change >= by if by > 0 else change <= by) and trend.beyond_noise(change)


def _kl_tiny(run: Run) -> bool:
    kl = run.trend("kl")
    return kl is not None and kl.last < KL_TINY


def _spikes(trend: Trend) -> list[tuple[int, float, float]]:
    """(step, value, value / trailing median) for values far above the median of the logs just before.

    Judged in log space (losses and gradient norms are positive and skewed) against the run's own typical
    jump, so a noisy but healthy series needs a bigger jump to count than a steady one."""
    points = [(s, v) for s, v in zip(trend.steps, trend.values) if v > 0]  # GRPO's grad_norm is 0 on all-tie batches
    logs = [math.log(v) for _, v in points]
    jumps = [(i, logs[i] - median(logs[max(0, i - SPIKE_WINDOW) : i])) for i in range(SPIKE_MIN_HISTORY, len(logs))]
    if not jumps:
        return []
    centre = median(j for _, j in jumps)
    spread = MAD_TO_SIGMA * median(abs(j - centre) for _, j in jumps)
    return [(points[i][0], points[i][1], math.exp(j)) for i, j in jumps
            if j - centre >= SPIKE_MADS * spread and math.exp(j) >= SPIKE_RATIO]


def _late_completions(completions: list[dict]) -> tuple[list[dict], int]:
    """The completions sampled in the last quarter of the logged steps, and the step that quarter starts at."""
    steps = [c["step"] for c in completions if isinstance(c.get("step"), (int, float))]
    if not steps:
        return completions[-(len(completions) // 4) :] if completions else [], 0
    since = int(min(steps) + 0.75 * (max(steps) - min(steps)))
    return [c for c in completions if isinstance(c.get("step"), (int, float)) and c["step"] >= since], since


def _text(completion: dict) -> str:
    text = completion.get("completion", "")
    if isinstance(text, list):  # chat form: [{"role": "assistant", "content": ...}]
        text = " ".join(str(m.get("content", "")) for m in text if isinstance(m, dict))
    return str(text)


def _loops(text: str) -> bool:
    words = text.split()
    units = words if len(words) >= LOOP_MIN_WORDS else list(text) if len(text) >= LOOP_MIN_CHARS else None
    if not units:
        return False
    grams = [tuple(units[i : i + 4]) for i in range(len(units) - 3)]
    return len(set(grams)) < LOOP_DISTINCT * len(grams)


# Overrides, computed from the recipe's current values; a value the doctor cannot know gives none.


def _scale(run: Run, key: str, factor: float) -> list[str]:
    value = number(run.setting(key))
    return [f"train.{key}={_yaml(value * factor)}"] if value else []


def _clip_gradients(run: Run) -> list[str]:
    clip = number(run.setting("max_grad_norm"))
    return ["train.max_grad_norm=0.2"] if clip is None or clip > 0.2 else []  # ≈0.2 tames spikes (DESIGN §5)


def _explore_more(run: Run) -> list[str]:
    overrides = []
    temperature = number(run.setting("temperature"))
    if temperature is not None and temperature < 1.5:
        overrides.append(f"train.temperature={_yaml(min(1.5, round(temperature + 0.2, 2)))}")
    epsilon_high = number(run.setting("epsilon_high")) or number(run.setting("epsilon")) or 0.2
    if epsilon_high < 0.28:  # DAPO's clip-higher: lets unlikely tokens gain probability
        overrides.append("train.epsilon_high=0.28")
    return overrides


def _length_neutral(run: Run) -> list[str]:
    # TRL's "grpo" loss normalises per sequence, which favours short right answers and long wrong ones.
    return ["train.loss_type=dr_grpo"] if run.setting("loss_type") == "grpo" else []


def _more_generations(run: Run) -> list[str]:
    generations = number(run.setting("num_generations"))
    if not generations:
        return []
    overrides = [f"train.num_generations={int(generations) * 2}"]
    # The generation batch must stay divisible by num_generations: double it too.
    for key in ("generation_batch_size", "steps_per_generation", "gradient_accumulation_steps"):
        value = number(run.setting(key))
        if value:
            overrides.append(f"train.{key}={int(value) * 2}")
            break
    if run.train.get("eval_strategy", "no") != "no":  # eval batches are checked against it as well
        overrides.append(f"train.num_generations_eval={int(generations)}")
    return overrides


def _yaml(value) -> str:
    """A number as a recipe override reads it back: YAML needs the dot in 1.0e-06 to see a float."""
    text = f"{value:.3g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + e + exponent
