"""GRPO symptoms: the reward's course, KL, entropy, completion length, groups that all agree, the PPO clip,
reward hacking (what the sampled completions show is in `samples`)."""

from statistics import linear_regression

from tinyalign.core.run_logs import LEARNING_RISE, Run, Trend, number
from tinyalign.symptoms.common import Finding, clip_gradients, scale, yaml_number

REWARD_FLAT_RISE = 0.05  # reward gained < 5 % of its scale (sum of |weights|) over the run: flat
REWARD_FALL = 0.10  # reward lost >= 10 % of its scale: beyond what noise in quarter medians explains
REWARD_LOW_LEVEL = 0.20  # flat under 20 % of the scale: the model rarely solves a task (the probe's line)
REWARD_SATURATED = 0.90  # flat above 90 %: nothing left to learn, not a training problem

KL_RUNAWAY_MIN = 0.1  # 0.1 nats/token is far from the reference for a real model's long answers; with a tiny
KL_RUNAWAY_GROWTH = 10.0  # beta it is fine while the metric improves. 10x the early level: still climbing
KL_EARLY_FLOOR = 1e-3  # KL starts at exactly 0 (policy == reference); compare growth against this at least
KL_HUGE = 1.0  # >= 1 nat/token is runaway whatever it started at
KL_TINY = 1e-3  # with a flat reward, a KL this small means the policy is hardly allowed to move
KL_FAR_LEARNING = 1.0  # >= 1 nat/token over the last quarter while the metric rises: too far for the reward alone
# to tell gain from hacking. The corpus's runs that learn end at 0.05-0.29 nats (single logs up to 1.5): 3.5x margin

ENTROPY_COLLAPSE_RATIO = 0.3  # healthy runs lose 10-40 % of their entropy; under 30 % left is near-greedy ...
CONVERGED_LEVEL = 0.75  # ... unless the metric rose to 75 %+: tasks with one right answer converge on it

LENGTH_NEAR_CAP = 0.8  # mean length >= 80 % of max_completion_length: the cap, not the task, shapes answers
CLIPPED_HIGH = 0.2  # >= 20 % of completions truncated: their rewards are mostly noise
LENGTH_GREW = 1.1  # the mean length rose by > 10 % from the run's first quarter to its last
LENGTH_COLLAPSE_RATIO = 0.3  # mean length under 30 % of its early level: answers cut to the bone

ZERO_STD_HIGH = 0.5  # over half the groups score all alike: zero advantage, they teach GRPO nothing

CLIP_RATIO_HIGH = 0.2  # > 20 % of tokens hit the PPO clip: each step moves too far from the sampler

HACK_RISE = 0.10  # a non-accuracy reward (0..1 scale) gaining >= 0.1 ...
HACK_ACCURACY_GAIN = 0.05  # ... while the accuracy reward gains under 0.05 (and is not near the top): hacking



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
        overrides = scale(run, "learning_rate", 2)
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
        scale(run, "learning_rate", 0.5) + clip_gradients(run),
    )


def kl_runaway(run: Run) -> "Finding | None":
    """KL far from the reference that buys nothing. KL rising while the accuracy reward rises is learning,
    however small beta is; it is judged against beta (what the KL-regularised optimum could reach) and
    the course of the metric, not against a fixed level."""
    course = _kl_course(run)
    if course is None:
        return None
    kl, growth = course["kl"], course["growth"]
    far = kl.last >= KL_HUGE or (kl.last >= KL_RUNAWAY_MIN and growth >= KL_RUNAWAY_GROWTH)
    learning = run.learning()
    if not (course["over_budget"] or (far and not learning)):
        return None
    metric = run.metric_trend()
    if metric is not None and _changed(metric, -LEARNING_RISE * run.metric_scale(metric)):
        cause = "the updates are too large: the policy leaves the reference and loses what it could do"
    elif learning:  # over budget while the metric rises: more drift than any reward-optimal policy needs
        cause = "the updates outrun beta: the policy is further from the reference than the reward can justify"
    else:
        cause = "the policy is drifting far from the reference without the task metric improving"
    remedy = "raise beta and lower the learning rate; read the latest completions for degenerate or gamed answers"
    return Finding(
        "kl_runaway", _kl_evidence(run, course), cause,
        f"{_held_out_check(run)}; {remedy}" if learning else remedy,
        scale(run, "beta", 2) + scale(run, "learning_rate", 0.5),
    )


def kl_far_while_learning(run: Run) -> "Finding | None":
    """KL far from the reference while the task metric rises. kl_runaway names drift that buys nothing;
    here the training reward says it buys a gain, but a policy this far from where it started can be
    gaming the reward or fitting the training prompts, and the logs cannot tell which. Not a diagnosis
    but a check to make: held-out accuracy per checkpoint and the latest samples."""
    course = _kl_course(run)
    if course is None or course["kl"].last < KL_FAR_LEARNING or course["over_budget"] or not run.learning():
        return None  # over budget: kl_runaway names it, one cause named once
    return Finding(
        "kl_far_while_learning", _kl_evidence(run, course),
        "the policy is far from the reference: the reward's rise may be real gain, or a hack the reward misses",
        f"{_held_out_check(run)}; if held-out accuracy does not follow the reward, raise beta and lower the "
        "learning rate",
        scale(run, "beta", 2) + scale(run, "learning_rate", 0.5),
    )


def kl_tiny_reward_flat(run: Run) -> "Finding | None":
    reward = _flat_reward(run)
    if reward is None or not _kl_tiny(run):
        return None
    return Finding(
        "kl_tiny_reward_flat", f"{run.trend('kl')}; {reward}",
        "over-constrained: beta holds the policy at the reference, or the learning rate is too low to move it",
        "lower beta and raise the learning rate",
        scale(run, "beta", 0.1) + scale(run, "learning_rate", 2),
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
        f"(train.use_adaptive_entropy=true train.entropy_target={yaml_number(entropy.first / 2)})",
        explore_more(run),
    )


def length_to_cap(run: Run) -> "Finding | None":
    length, clipped = run.trend("completions/mean_length"), run.trend("completions/clipped_ratio")
    cap = number(run.setting("max_completion_length"))
    if cap is None and run.points("completions/max_length") and clipped and max(clipped.values) > 0:
        cap = max(v for _, v in run.points("completions/max_length"))  # a truncated completion is cap long
    # Near the cap is a length bias where answers grew into it or some are cut there; answers that were
    # that long from the start and all end before it (a judge's 53 tokens under a 64 cap) are the task's.
    near_cap = (length is not None and cap and length.last >= LENGTH_NEAR_CAP * cap
                and (length.last > LENGTH_GREW * length.first or (clipped is not None and clipped.last > 0)))
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
        scale(run, "learning_rate", 0.5) + ([f"train.num_iterations={max(1, int(iterations) // 2)}"] if iterations > 1 else []),
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
            overrides.append(f"rewards.{index}.weight={yaml_number(weight / 2)}")
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


def _kl_course(run: Run) -> "dict | None":
    """The KL trend, its growth over the early level, the nats per answer, and whether that exceeds what beta allows."""
    kl = run.trend("kl")
    if kl is None:
        return None
    beta, length = number(run.setting("beta")), run.trend("completions/mean_length")
    per_answer = kl.last * (length.last if length else 1.0)
    # The optimum of reward - beta * KL moves at most reward_range / beta nats per answer from the reference.
    return {"kl": kl, "growth": kl.last / max(kl.first, KL_EARLY_FLOOR), "per_answer": per_answer, "beta": beta,
            "over_budget": bool(beta) and per_answer > run.reward_scale / beta}


def _kl_evidence(run: Run, course: dict) -> str:
    kl, beta, metric = course["kl"], course["beta"], run.metric_trend()
    half = kl.values[len(kl.values) // 2 :]
    climbing = linear_regression(range(len(half)), half).slope > 0
    return (f"{kl}; {course['growth']:.0f}x the early level, {'still climbing' if climbing else 'no longer climbing'}"
            f" (last log {kl.values[-1]:.3g}); ~{course['per_answer']:.2g} nats per answer"
            + (f" (beta {beta:g} allows ~{run.reward_scale / beta:.3g})" if beta else "")
            + (f"; {metric}" if metric else ""))


def _held_out_check(run: Run) -> str:
    """What tells a gain from a hack when the training reward cannot: held-out accuracy and the samples."""
    where = run.folder or run.recipe.get("output_dir") or "RUN_DIR"
    return (f"before trusting the reward, score held-out accuracy per checkpoint (python -m tinyalign.evaluate {where} "
            "--checkpoints all) and read the latest samples (completions.jsonl)")


def _kl_tiny(run: Run) -> bool:
    kl = run.trend("kl")
    return kl is not None and kl.last < KL_TINY


def explore_more(run: Run) -> list[str]:
    overrides = []
    temperature = number(run.setting("temperature"))
    if temperature is not None and temperature < 1.5:
        overrides.append(f"train.temperature={yaml_number(min(1.5, round(temperature + 0.2, 2)))}")
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
