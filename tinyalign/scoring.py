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


def greedy_accuracy(model, tokenizer, rows: list[dict], reward, max_new_tokens: int,
                    batch_size: int = 64, desc: str | None = None) -> float:
    """Share of `rows` ({prompt, answer}) whose greedy answer gets the reward's top score."""
    completions = generate(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens,
                           batch_size=batch_size, desc=desc)
    scores = reward([c[0] for c in completions], answer=[r["answer"] for r in rows])
    return mean(1.0 if s is not None and s >= reward.max_score else 0.0 for s in scores)
