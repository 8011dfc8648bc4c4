"""A reward model measured: its scalar score for answers, and on held-out pairs how often it sides with
the people who voted (accuracy), by how much (margin), and whether it pays for length (length bias).

rm.py measures a run when it ends (rm_metrics.json), the GRPO reward scores completions with it, and
evaluate, judge and loop measure reward models and their checkpoints.
"""

from pathlib import Path
from statistics import mean, pstdev

from tinyalign.core.errors import UserError
from tinyalign.data import loading as data
from tinyalign.data.messages import message_text
from tinyalign.models import loading as model
from tinyalign.models.reward_model import METRICS, held_out_stats, load_for_scoring, rm_scores


def measure(scorer, tokenizer, pairs) -> dict:
    """Held-out accuracy, mean margin, length bias and the score scale, from rows of prompt/chosen/rejected."""
    pairs = list(pairs)
    if not pairs:
        raise UserError("no held-out pairs to measure the reward model on; set data.test_size or data.test_split")
    prompts = [p["prompt"] for p in pairs]
    chosen = rm_scores(scorer, tokenizer, prompts, [p["chosen"] for p in pairs])
    rejected = rm_scores(scorer, tokenizer, prompts, [p["rejected"] for p in pairs])
    margins = [c - r for c, r in zip(chosen, rejected)]
    # Length bias: over pairs whose answers differ in length, does the RM prefer the longer answer
    # more often than the people did? (0 = no bias; +0.3 = 30 points more often than it should)
    longer_wins, longer_chosen = [], []
    for p, c, r in zip(pairs, chosen, rejected):
        len_c, len_r = len(message_text(p["chosen"], join="")), len(message_text(p["rejected"], join=""))
        if len_c != len_r and c != r:
            longer_chosen.append(len_c > len_r)
            longer_wins.append((c > r) == (len_c > len_r))
    everything = chosen + rejected
    return {
        "pairs": len(pairs),
        "accuracy": mean(m > 0 for m in margins),
        "mean_margin": mean(margins),
        "longer_wins": mean(longer_wins) if longer_wins else None,
        "longer_chosen": mean(longer_chosen) if longer_chosen else None,
        "length_bias": mean(longer_wins) - mean(longer_chosen) if longer_wins else None,
        "length_pairs": len(longer_wins),
        "score_mean": mean(everything),
        "score_std": pstdev(everything) or 1.0,
    }


def summary(metrics: dict) -> str:
    bias = metrics.get("length_bias")
    length = (f"longer answer wins {metrics['longer_wins']:.0%} vs chosen longer {metrics['longer_chosen']:.0%} "
              f"(bias {bias:+.0%}, {metrics['length_pairs']} pairs)" if bias is not None else "no pairs differ in length")
    return (f"held-out: accuracy {metrics['accuracy']:.1%} on {metrics['pairs']} pairs, mean margin "
            f"{metrics['mean_margin']:.3f}; {length}; score mean {metrics['score_mean']:.3f} std {metrics['score_std']:.3f}")


# ---------------------------------------------------------------- evaluate


def evaluate_checkpoints(recipe, adapters: list[tuple[str, int, str]]) -> list[dict]:
    """Held-out accuracy, mean margin and length bias of each (name, step, adapter folder) of an RM run,
    on the run's own held-out pairs; the final adapter's figures come from its rm_metrics.json."""
    _, test = data.load(recipe.data, "rm", recipe.seed)
    if test is None:
        raise UserError("this reward-model recipe holds out no pairs; set data.test_size or data.test_split")
    scorer = tokenizer = None
    table = []
    for name, step, folder in adapters:
        if name == "final" and (Path(folder) / METRICS).is_file():
            metrics = held_out_stats(folder)
        else:
            slot = name.replace("-", "_")
            if scorer is None:  # the base once; checkpoints swap in as adapters
                scorer, tokenizer = load_for_scoring(folder)
            scorer = model.use_adapter(scorer, folder, slot)
            metrics = measure(scorer, tokenizer, test)
        table.append({"model": name, "step": step, "accuracy": metrics["accuracy"],
                      "mean_margin": metrics["mean_margin"], "length_bias": metrics["length_bias"]})
    return table
