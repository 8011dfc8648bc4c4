"""Format rewards: is the reasoning and the answer where the recipe's system prompt asked for them?

Each public function is a factory: it takes the reward's parameters (from the recipe) and returns the
reward itself, `f(completions, **kwargs) -> list[float]`, as a picklable `functools.partial`.
"""

import functools

from tinyalign.rewards.text import score_each


def _tag_spans(text: str, tag: str) -> tuple[int, int] | None:
    """(start of `<tag>`, end of `</tag>`) when each appears exactly once, opening first; else None."""
    open_, close = f"<{tag}>", f"</{tag}>"
    if text.count(open_) != 1 or text.count(close) != 1:
        return None
    start, end = text.find(open_), text.find(close)
    return (start, end + len(close)) if start < end else None


def _answer_block(text: str) -> tuple[int, int] | None:
    """The span of the single, non-empty `<answer>` block; an empty one is an easy format hack."""
    span = _tag_spans(text, "answer")
    if span is None or not text[span[0] + len("<answer>") : span[1] - len("</answer>")].strip():
        return None
    return span


def _think_format_score(text: str, strict: bool) -> float:
    think, answer = _tag_spans(text, "think"), _answer_block(text)
    if think is None or answer is None or think[1] > answer[0]:
        return 0.0
    if strict:
        # Nothing but whitespace before, between and after the two blocks.
        outside = text[: think[0]] + text[think[1] : answer[0]] + text[answer[1] :]
        if outside.strip():
            return 0.0
    return 1.0


def _answer_format_score(text: str, strict: bool) -> float:
    answer = _answer_block(text)
    if answer is None or (strict and text[answer[1] :].strip()):
        return 0.0
    return 1.0


def think_format(strict: bool = False):
    """Reasoning in `<think>...</think>`, then the answer in `<answer>...</answer>`: 1.0, else 0.0.

    Each tag must appear exactly once, the think block before the answer block, and the answer must
    not be empty. `strict: true` also requires the completion to be nothing but the two blocks
    (whitespace around them is fine); the default tolerates text before, between and after them.
    """
    return functools.partial(score_each, score=functools.partial(_think_format_score, strict=strict))


def answer_format(strict: bool = False):
    """Exactly one non-empty `<answer>...</answer>` block: 1.0, else 0.0.

    `strict: true` also requires the answer block to end the completion (only whitespace after it), so
    the model cannot keep talking after it has answered.
    """
    return functools.partial(score_each, score=functools.partial(_answer_format_score, strict=strict))
