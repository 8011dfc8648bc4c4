"""The leaderboard: checkpoints rated from their votes, Bradley-Terry on the Elo scale, optionally with
style covariates.

    leaderboard("prefs.sqlite")            # -> ratings per checkpoint, best first

One solver serves both the raw rating and the style-controlled one (as Chatbot Arena's style
control does): P(first wins) = sigmoid(theta_first - theta_second + beta . features). With no
features it is plain Bradley-Terry; with answer length and markdown as features, what a longer or
more marked-up answer wins by itself goes into beta, and theta rates the checkpoints as if their
answers had the same style.
"""

import re

import numpy as np

from tinyalign.votes.store import read_votes

MARKDOWN = re.compile(r"(?m)^\s{0,3}(#{1,6}\s|[-*+]\s|\d+[.)]\s|```)|\*\*[^*]+\*\*")
STYLE_FEATURES = ("length", "markdown")


def style_features(vote) -> list[float]:
    """How much longer and more marked-up response_a is than response_b, each as (a - b) / (a + b) in
    -1..1: characters, and markdown headers, list items, code fences and bold spans."""
    def relative(a, b):
        return (a - b) / (a + b) if a + b else 0.0

    a, b = vote["response_a"], vote["response_b"]
    return [relative(len(a), len(b)), relative(len(MARKDOWN.findall(a)), len(MARKDOWN.findall(b)))]


def bradley_terry(n_models, first, second, score, features=None, prior=0.5, ridge=1e-3):
    """(Elo-scale ratings, beta per feature in logits): the maximum-likelihood strengths, by Newton's method.

    score is 1 when `first` won, 0 when it lost, 0.5 for a tie. Each model also plays `prior` wins and
    `prior` losses against a phantom rated 1000: an unbeaten model stays finite, a model with few votes
    stays near 1000, and the phantom pins the scale so no renormalising is needed. `ridge` keeps beta
    finite when the features are collinear with the models.
    """
    n = len(score)
    features = np.zeros((n, 0)) if features is None else np.asarray(features, dtype=float).reshape(n, -1)
    k = features.shape[1]
    design = np.zeros((n + n_models, n_models + k))
    design[np.arange(n), first] += 1.0
    design[np.arange(n), second] -= 1.0
    design[:n, n_models:] = features
    design[n + np.arange(n_models), np.arange(n_models)] = 1.0  # each model against the phantom
    target = np.concatenate([score, np.full(n_models, 0.5)])
    weight = np.concatenate([np.ones(n), np.full(n_models, 2 * prior)])  # prior wins + prior losses
    penalty = np.concatenate([np.zeros(n_models), np.full(k, ridge)])

    def log_likelihood(params):
        z = design @ params
        return (weight * (target * -np.logaddexp(0, -z) + (1 - target) * -np.logaddexp(0, z))).sum() \
            - 0.5 * (penalty * params ** 2).sum()

    params = np.zeros(n_models + k)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(design @ params)))
        gradient = design.T @ (weight * (target - p)) - penalty * params
        hessian = -(design.T * (weight * p * (1 - p))) @ design - np.diag(penalty)
        step = np.linalg.solve(hessian, -gradient)
        # Halve the step while it lowers the likelihood: a full Newton step can overshoot when one
        # model won nearly everything.
        size, before = 1.0, log_likelihood(params)
        while log_likelihood(params + size * step) < before and size > 1e-6:
            size /= 2
        params = params + size * step
        if np.max(np.abs(size * step)) < 1e-9:
            break
    return 1000.0 + 400.0 * params[:n_models] / np.log(10), params[n_models:]


def leaderboard(store_or_path, *, dimension=None, resamples=200, seed=0):
    """Per checkpoint: votes, wins, losses, ties, win_rate and an Elo-scale Bradley-Terry rating with a
    bootstrap 95 % range (rating_low, rating_high), best first; and `style_rating`, the rating with
    answer length and markdown as covariates (a checkpoint that wins by being longer drops there).

    both_bad counts as a tie (neither answer was preferred). win_rate counts a tie as half a win.
    Votes comparing a checkpoint with itself say nothing about ranking and are left out, and so are
    undone votes, Review-tab rows and gold items. With `dimension`, only the verdicts on that dimension count.
    """
    votes = [v for v in read_votes(store_or_path, dimension)
             if v["model_a"] != v["model_b"] and not v["settings"].get("review")  # a correction is no checkpoint
             and not v["settings"].get("gold")]  # nor is a gold item's known answer
    if not votes:
        return []
    models = sorted({v[k] for v in votes for k in ("model_a", "model_b")})
    index = {m: i for i, m in enumerate(models)}
    first = np.array([index[v["model_a"]] for v in votes])
    second = np.array([index[v["model_b"]] for v in votes])
    score = np.array([{"a": 1.0, "b": 0.0}.get(v["vote"], 0.5) for v in votes])

    ratings, _ = bradley_terry(len(models), first, second, score)
    rng = np.random.default_rng(seed)
    boot = np.empty((resamples, len(models)))
    for r in range(resamples):
        sample = rng.integers(0, len(votes), len(votes))
        boot[r] = bradley_terry(len(models), first[sample], second[sample], score[sample])[0]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    styled, _ = bradley_terry(len(models), first, second, score, np.array([style_features(v) for v in votes]))

    table = []
    for i, model in enumerate(models):
        as_first, as_second = score[first == i], 1.0 - score[second == i]
        results = np.concatenate([as_first, as_second])
        wins, losses = int((results == 1).sum()), int((results == 0).sum())
        table.append({
            "model": model, "votes": len(results), "wins": wins, "losses": losses,
            "ties": len(results) - wins - losses,
            "win_rate": float(results.mean()),
            "rating": float(ratings[i]),
            # A percentile range can miss a point estimate the bootstrap finds biased; widen it so
            # the table never shows a rating outside its own range.
            "rating_low": float(min(low[i], ratings[i])),
            "rating_high": float(max(high[i], ratings[i])),
            "style_rating": float(styled[i]),
        })
    return sorted(table, key=lambda row: -row["rating"])
