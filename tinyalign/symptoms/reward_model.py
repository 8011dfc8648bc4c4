"""Reward-model symptoms: an RM run that cannot tell chosen from rejected, stops separating pairs or pays
for length, and a GRPO run whose learned reward rises while the answers do not get righter (hacked).

The held-out figures come from the RM run's rm_metrics.json, written when training ends; the logged
margins and the GRPO rows are judged while training too.
"""

from statistics import mean, median, pstdev

from tinyalign.core.run_logs import Run
from tinyalign.data.messages import message_text
from tinyalign.symptoms.common import Finding

AT_CHANCE = 0.6  # held-out accuracy under 60 %: a coin flip would do nearly as well
MARGIN_COLLAPSE = 0.5  # logged margin's last quarter under half its best quarter: the RM stopped separating
LENGTH_BIAS = 0.2  # the longer answer wins 20 points more often than people chose it: the RM rewards length
LENGTH_MIN_PAIRS = 10  # fewer pairs that differ in length cannot show a bias
HACK_RM_RISE = 0.5  # the learned reward rising half a held-out standard deviation ...
HACK_RULE_GAIN = 0.02  # ... while the rule metric on the same completions gains under 2 points: hacking
JUDGE_CHECKER_FLOOR = 0.6  # a judge whose decisive verdicts the checker backs under 60 % of the time is near chance
CHECKER_AGREEMENT = "pairwise_judge/checker_agreement"
# learned from votes: a policy can game them (a pairwise judge's win rate averages 0.5 by construction, so it
# cannot rise: judge_gamed reads its checker agreement instead)
LEARNED_REWARDS = ("reward_model", "implicit_reward")


def _learning_rate(run: Run) -> float:
    return float(run.train.get("learning_rate", 1e-4))


def rm_at_chance(run: Run) -> "Finding | None":
    metrics = run.rm_metrics
    if metrics is None or metrics["accuracy"] >= AT_CHANCE:
        return None
    lr, folder = _learning_rate(run), run.folder
    return Finding(
        "rm_at_chance", f"held-out accuracy {metrics['accuracy']:.0%} on {metrics['pairs']} pairs",
        "the reward model cannot tell chosen from rejected: too few or contradictory votes, or too little training",
        "collect more votes (read a few pairs: do they say what 'better' means?); train longer or at a higher "
        f"LR: python -m tinyalign.rm {folder}/recipe.yaml train.learning_rate={lr * 2:g} train.num_train_epochs=2 "
        f"output_dir={folder}-more")


def rm_margins_collapsing(run: Run) -> "Finding | None":
    margins = [v for _, v in run.points("margin")]
    if len(margins) < 8:
        return None
    quarter = max(2, len(margins) // 4)
    best = max(median(margins[i:i + quarter]) for i in range(len(margins) - quarter + 1))
    last = median(margins[-quarter:])
    if not (best > 0 and last < MARGIN_COLLAPSE * best):
        return None
    lr = _learning_rate(run)
    return Finding(
        "rm_margins_collapsing", f"logged margin fell from {best:.3g} to {last:.3g}",
        "the reward model stopped separating pairs: learning rate too high, or centring pulls every score to 0",
        f"lower the learning rate (train.learning_rate={lr / 2:g}); lower train.center_rewards_coefficient")


def rm_tracks_length(run: Run) -> "Finding | None":
    metrics = run.rm_metrics
    bias = metrics and metrics.get("length_bias")
    if bias is None or abs(bias) < LENGTH_BIAS or metrics.get("length_pairs", 0) < LENGTH_MIN_PAIRS:
        return None
    longer = "longer" if bias > 0 else "shorter"
    return Finding(
        "rm_tracks_length", f"the longer answer wins {metrics['longer_wins']:.0%} of held-out pairs, people chose "
                            f"it {metrics['longer_chosen']:.0%} ({metrics['length_pairs']} pairs)",
        f"the reward model pays for {longer} answers, not better ones: GRPO on it will drift in length",
        "vote on pairs where the other length wins; add an overlong / length_penalty reward next to it in GRPO")


def rm_hacked(run: Run) -> "Finding | None":
    """GRPO on a learned reward (a reward model's, or a DPO run's implicit one): its score rises while exact
    match of the same logged completions (against the data's reference answers) does not."""
    names = [r.get("name") for r in run.recipe.get("rewards", [])]
    learned = next((name for name in names if name in LEARNED_REWARDS), None)
    if learned is None:
        return None
    points = [v for _, v in run.points(f"rewards/{learned}/mean")]
    rows = [r for r in run.completions if r.get("answer") is not None]
    if len(points) < 4 or len(rows) < 16:
        return None
    quarter = max(1, len(points) // 4)
    rise = median(points[-quarter:]) - median(points[:quarter])
    rows.sort(key=lambda r: r.get("step", 0))
    cut = max(1, len(rows) // 4)
    unit = "held-out std units"
    if learned != "reward_model":  # raw scores: measured in their own spread over the first quarter's answers
        early = [r["rewards"][learned] for r in rows[:cut] if learned in (r.get("rewards") or {})]
        spread = pstdev(early) if len(early) > 1 else 0.0
        rise, unit = (rise / spread if spread else 0.0), "standard deviations of its first answers"
    exact = [message_text(r.get("completion", ""), join="").strip() == str(r["answer"]).strip() for r in rows]
    gain = mean(exact[-cut:]) - mean(exact[:cut])
    if rise < HACK_RM_RISE or gain >= HACK_RULE_GAIN:
        return None
    index = names.index(learned)
    return Finding(
        "rm_hacked", f"rewards/{learned}/mean rose {rise:+.2f} ({unit}) while exact match of the "
                     f"same completions moved {gain:+.0%}",
        "the policy found what the learned reward pays for without being right (it was never trained on its answers)",
        "vote on this checkpoint's answers and retrain the reward on them (python -m tinyalign.loop); "
        "add a rule reward where one can judge",
        [f"rewards.{index}.weight=0.5"])


def judge_gamed(run: Run) -> "Finding | None":
    """GRPO on a pairwise judge with a `checker`: over the run's last quarter, the checker backs too few of the
    judge's verdicts on the policy's own answers (logged per step by the reward as pairwise_judge/checker_agreement)."""
    points = [v for _, v in run.points(CHECKER_AGREEMENT)]
    if len(points) < 4:
        return None
    late = median(points[-max(1, len(points) // 4):])
    if late >= JUDGE_CHECKER_FLOOR:
        return None
    names = [r.get("name") for r in run.recipe.get("rewards", [])]
    index = names.index("pairwise_judge") if "pairwise_judge" in names else 0
    return Finding(
        "judge_gamed", f"{CHECKER_AGREEMENT} is {late:.0%} over the last quarter of the run (from {points[0]:.0%} at "
                       "its first log): the judge's verdicts on the policy's own answers are near chance",
        "the policy writes answers the judge misjudges (it was trained on older answers than these)",
        "vote on this checkpoint's answers and train the judge again on the pairs it gets wrong "
        "(python -m tinyalign.judge verdicts --judge ...); add a rule reward where one can judge",
        [f"rewards.{index}.weight=0.5"])
