"""Score a model on held-out prompts with the recipe's rewards: the task metric, not the loss."""

from statistics import mean

from .generate import generate


def accuracy_reward(recipe):
    """The reward that says "solved": the recipe's first accuracy-kind reward, else exact_match."""
    from . import rewards

    for spec in recipe.rewards:
        reward = rewards.resolve(spec)
        if reward.kind == "accuracy":
            return reward
    return rewards.resolve({"name": "exact_match"})


def generation_settings(recipe) -> dict:
    """Sampling settings shared by probe, evaluate and the app: the recipe's `generation:`, else its
    GRPO settings, else short defaults."""
    train = recipe.train
    return {
        "max_new_tokens": recipe.generation.get("max_new_tokens", train.get("max_completion_length", 256)),
        "temperature": recipe.generation.get("temperature", train.get("temperature", 1.0)),
        "top_p": recipe.generation.get("top_p", train.get("top_p", 1.0)),
    }


def at_max(reward, scores) -> list[bool]:
    """Which scores are the reward's top score: "solved" for an accuracy reward, "compliant" for a format one."""
    return [s is not None and s >= reward.max_score for s in scores]


def solved(reward, completions: list[str], **columns) -> list[bool] | None:
    """Which completions the reward scores at its top; None when no row has a reference to judge by."""
    scores = reward(completions, **columns)
    return None if all(s is None for s in scores) else at_max(reward, scores)


def held_out_accuracy(recipe_file: str, adapters: dict[str, str], limit: int) -> dict[str, float]:
    """Greedy accuracy on the recipe's held-out questions for the base and each adapter (base loaded once)."""
    from . import data, model, recipe as recipes

    recipe = recipes.load(recipe_file)
    rows = data.eval_rows(recipe.data, limit=limit, seed=recipe.seed)
    reward = accuracy_reward(recipe)
    max_new = generation_settings(recipe)["max_new_tokens"]
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)

    def accuracy(name):
        completions = generate(policy, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new, desc=name)
        return mean(solved(reward, [c[0] for c in completions], answer=[r["answer"] for r in rows]) or [0.0])

    with policy.disable_adapter():
        results = {"base": accuracy("base")}
    for name in adapters:
        policy.set_adapter(name)
        results[name] = accuracy(name)
    return results
