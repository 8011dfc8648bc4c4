"""Penalties against length drift and degenerate output (scores are 0 at best, negative otherwise).

Length is counted in tokens from `completion_ids`, which GRPO always passes, so the numbers in a recipe
mean the same as `train.max_completion_length`. Called without `completion_ids` (tests, offline
scoring) the length is counted in characters instead.
"""

import functools

from tinyalign.core.errors import UserError
from tinyalign.rewards.text import completion_text, score_each


def _lengths(completions, completion_ids) -> list[int]:
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(completion_text(c)) for c in completions]


def _overlong_scores(completions, *, max_len: int, buffer: int, completion_ids=None, **columns) -> list[float]:
    start = max_len - buffer
    scores = []
    for length in _lengths(completions, completion_ids):
        if length <= start:
            scores.append(0.0)
        elif length <= max_len:
            scores.append((start - length) / buffer)
        else:
            scores.append(-1.0)
    return scores


def overlong(max_len: int, buffer: int | None = None):
    """DAPO's soft overlong punishment: 0 up to `max_len - buffer`, then linear down to -1 at `max_len`.

    Completions longer than `max_len` score -1. Set `max_len` to `train.max_completion_length` so that
    truncated answers get the full penalty. `buffer` defaults to a quarter of `max_len`.
    """
    buffer = max_len // 4 if buffer is None else buffer
    if max_len < 1 or not 0 < buffer <= max_len:
        raise UserError(
            "reward 'overlong': need max_len >= 1 and 0 < buffer <= max_len, "
            f"got max_len={max_len}, buffer={buffer}; fix them"
        )
    return functools.partial(_overlong_scores, max_len=max_len, buffer=buffer)


def _length_penalty_scores(completions, *, target: int, scale: int, completion_ids=None, **columns) -> list[float]:
    return [-min(1.0, abs(length - target) / scale) for length in _lengths(completions, completion_ids)]


def length_penalty(target: int, scale: int | None = None):
    """Pull lengths towards `target`: score -|length - target| / scale, floored at -1; 0 at the target.

    Unlike `overlong` it also penalises answers that collapse to a few tokens, the other direction of
    length drift. `scale` (default: `target`) is how far from the target a completion hits -1.
    """
    scale = target if scale is None else scale
    if target < 1 or scale < 1:
        raise UserError(
            "reward 'length_penalty': target and scale must be >= 1, "
            f"got target={target}, scale={scale}; fix them"
        )
    return functools.partial(_length_penalty_scores, target=target, scale=scale)


def _repetition_score(text: str, ngram: int, max_penalty: float) -> float:
    words = text.split()
    if len(words) < ngram:
        return 0.0
    grams = list(zip(*(words[i:] for i in range(ngram))))
    repeated = 1.0 - len(set(grams)) / len(grams)
    return repeated * max_penalty if repeated else 0.0  # `if` avoids -0.0 in the logs


def repetition(ngram: int = 3, max_penalty: float = -1.0):
    """Penalise repeated word n-grams: score = (1 - unique n-grams / all n-grams) * max_penalty.

    0 when no `ngram`-word sequence repeats, approaching `max_penalty` (default -1) for output that
    loops on one phrase. Words are whitespace-separated, so the score does not depend on the
    tokenizer; completions shorter than `ngram` words score 0.
    """
    if ngram < 1 or max_penalty > 0:
        raise UserError(
            "reward 'repetition': need ngram >= 1 and max_penalty <= 0, "
            f"got ngram={ngram}, max_penalty={max_penalty}; fix them"
        )
    score = functools.partial(_repetition_score, ngram=ngram, max_penalty=float(max_penalty))
    return functools.partial(score_each, score=score)
