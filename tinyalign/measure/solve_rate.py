"""Which answers a recipe's rewards count as solved, and a model's held-out solve rate: the task metric,
not the loss (which keeps falling long after the answers stop improving)."""

from statistics import mean

from tinyalign.core.errors import UserError
from tinyalign.models.generate import generate, generation_settings


def accuracy_reward(recipe, name: str | None = None):
    """The reward that says "solved": `name` when given (an accuracy-kind reward), else the recipe's first
    accuracy-kind reward, else exact_match."""
    from tinyalign import rewards

    if name:
        try:
            reward = rewards.resolve({"name": name})
        except UserError as e:
            raise UserError(f"--accuracy: {e}") from None
        if reward.kind != "accuracy":
            raise UserError(f"--accuracy {name} is a {reward.kind} reward; name one that says whether an answer "
                            "is right, e.g. math_accuracy or exact_match")
        return reward
    return next(iter(rewards.accuracy_rewards(recipe.rewards)), None) or rewards.resolve({"name": "exact_match"})


def at_max(reward, scores) -> list[bool]:
    """Which scores are the reward's top score: "solved" for an accuracy reward, "compliant" for a format one."""
    return [s is not None and s >= reward.max_score for s in scores]


def solved(reward, completions: list[str], **columns) -> list[bool] | None:
    """Which completions the reward scores at its top; None when no row has a reference to judge by."""
    scores = reward(completions, **columns)
    return None if all(s is None for s in scores) else at_max(reward, scores)


def held_out_accuracy(recipe_file: str, adapters: dict[str, str], limit: int, base: bool = True) -> dict[str, float]:
    """Greedy accuracy on the recipe's held-out questions for the base (unless `base` is False) and each
    adapter (the base weights loaded once)."""
    return {name: mean(right) for name, right in held_out_verdicts(recipe_file, adapters, limit, base).items()}


def held_out_verdicts(recipe_file: str, adapters: dict[str, str], limit: int, base: bool = True) -> dict[str, list]:
    """Per held-out question, whether each model's greedy answer is right (as `held_out_accuracy`): the
    items `paired_interval95` compares."""
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model

    recipe = recipes.load(recipe_file)
    rows = data.eval_rows(recipe.data, limit=limit, seed=recipe.seed)
    reward = accuracy_reward(recipe)
    max_new = generation_settings(recipe)["max_new_tokens"]
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)

    def verdicts(name):
        completions = generate(policy, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new, desc=name)
        return solved(reward, [c[0] for c in completions], answer=[r["answer"] for r in rows]) or [False] * len(rows)

    results = {}
    if base:
        with policy.disable_adapter():
            results["base"] = verdicts("base")
    for name in adapters:
        policy.set_adapter(name)
        results[name] = verdicts(name)
    return results


def interval95(share: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share measured on n items: on 200 items a 50 % share is
    known only to about ±7 points, so two stages closer than that have not been told apart."""
    if n <= 0:
        return 0.0, 1.0
    z = 1.959964
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_interval95(before: list[float], after: list[float]) -> tuple[float, float, float]:
    """(after - before accuracy, 95 % interval of that difference) for two models scored on the same items.

    Each item is its own control: only the items that changed sides carry the difference, so the interval
    is far narrower than two Wilson intervals side by side (on 300 items, 20 fixed and 8 broken gives
    +4.0 points, 95 % interval +0.6 to +7.4, where the two Wilson intervals overlap by seven points). A normal
    interval on the per-item differences; fine from a few dozen items."""
    if len(before) != len(after) or not before:
        raise ValueError("paired_interval95 needs the same non-empty items scored by both models")
    n = len(before)
    changes = [float(b) - float(a) for a, b in zip(before, after)]  # per item: a verdict, or a share of samples
    diff = sum(changes) / n
    variance = sum((c - diff) ** 2 for c in changes) / max(1, n - 1)
    half = 1.959964 * (variance / n) ** 0.5
    return diff, diff - half, diff + half
