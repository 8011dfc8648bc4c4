"""Symptoms of any training run: loss or gradient-norm spikes, and overfitting (eval loss turning up)."""

import math
from statistics import median

from tinyalign.core.run_logs import MAD_TO_SIGMA, Run, Trend
from tinyalign.symptoms.common import Finding, clip_gradients, scale

SPIKE_WINDOW = 10  # a value's jump is measured from the median of the 10 logs before (trailing: a falling loss is no spike)
SPIKE_MIN_HISTORY = 5  # need this many previous values before a jump can be measured
SPIKE_MADS = 6.0  # a spike's jump is 6 robust sigmas (1.4826 x MAD) of the run's own jumps: noise essentially never is
SPIKE_RATIO = 2.0  # ... and at least 2x the trailing median, so a very steady series' wobble does not count
SPIKE_MIN_COUNT = 2  # one hard batch happens; two spikes are a pattern ...
SPIKE_LONE_RATIO = 5.0  # ... and so is a single spike of 5x or more

OVERFIT_MIN_EVALS = 3  # eval loss needs a best point and a later worse one
OVERFIT_RISE = 0.05  # eval loss 5 % above its best while train loss kept falling


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
        scale(run, "learning_rate", 0.5) + clip_gradients(run),
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
