"""DPO symptoms: the chosen-vs-rejected margins and a loss that collapses too fast."""

from statistics import median

from tinyalign.core.run_logs import Run, number, trl_defaults
from tinyalign.symptoms.common import Finding, clip_gradients, scale

DPO_MARGIN_FLAT_NATS = 1.0  # margins / beta (chosen-vs-rejected log-ratio gap) gaining < 1 nat: flat
DPO_LOSS_COLLAPSED = 0.05  # DPO loss starts at ln 2 = 0.69; under 0.05 every pair is separated
DPO_FAST_FRACTION = 0.1  # ... reached within the first 10 % of training: the policy jumped, it did not learn


def dpo_margins_flat(run: Run) -> "Finding | None":
    margins = run.trend("rewards/margins")
    beta = number(run.setting("beta")) or trl_defaults("dpo")["beta"]
    if margins is None or not run.long_enough(margins) or (margins.last - margins.first) / beta >= DPO_MARGIN_FLAT_NATS:
        return None
    return Finding(
        "dpo_margins_flat", f"{margins}; {(margins.last - margins.first) / beta:.2g} nats of log-ratio gap at beta {beta:g}",
        "beta too high: the policy is held so close to the reference that chosen and rejected barely separate",
        "lower beta; check that chosen and rejected really differ (votes, not ties)",
        scale(run, "beta", 0.5),
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
        scale(run, "learning_rate", 0.1) + clip_gradients(run),
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
        scale(run, "beta", 2) + scale(run, "learning_rate", 0.5),
    )
