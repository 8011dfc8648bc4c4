"""Accuracy rewards: is the model's final answer the reference answer (the dataset's `answer` column)?

Both score 1.0 for a correct answer and 0.0 otherwise, and `None` for a row whose reference is
missing (GRPO then leaves that score out of its averages).
"""

import functools
import importlib.util
import re

from tinyalign.core.errors import UserError
from tinyalign.rewards import mathcheck
from tinyalign.rewards.text import (
    as_number,
    completion_text,
    last_boxed,
    last_number,
    normalise,
    reference_answer,
    tag_content,
)

# Bounds on what reaches math-verify. A final answer is short: a number, a fraction, a tuple, a small
# matrix. Longer or deeper text is an answer the model failed to isolate, not one worth parsing.
MAX_ANSWER_CHARS = 400
MAX_BRACE_DEPTH = 12

# Words that are mathematics, not prose, when they appear without a backslash (or as \begin{pmatrix}).
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "lg", "exp", "sqrt", "pi", "inf", "infty", "max", "min", "gcd", "lcm", "mod", "or", "and",
    "matrix", "pmatrix", "bmatrix", "vmatrix", "array", "cases",
}
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}\b")
_UNIT_POWER_RE = re.compile(r"(?<=[A-Za-z])\^\{?\d+\}?")  # the ^2 of "12 cm^2"
_UNESCAPED_PERCENT_RE = re.compile(r"(?<!\\)%")  # a bare % would start a LaTeX comment
_WRAPPERS = ("\\$", "$", "\\(", "\\)", "\\[", "\\]")


def model_answer(text: str) -> str | None:
    r"""The model's final answer: the last `<answer>` block, else the last `\boxed{}`, else the last number."""
    answer = tag_content(text, "answer")
    if answer is not None:
        return answer
    boxed = last_boxed(text)
    return boxed if boxed is not None else last_number(text)


def _brace_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "}":
            depth -= 1
    return deepest


def math_form(answer: str | None) -> str | None:
    r"""The bare LaTeX of an answer, or None when there is none worth parsing.

    Takes the content of a `\boxed{}`, drops `$`, `\(`, `\)` and the like, and turns prose or units
    ("The answer is 42 apples", "12 cm^2", "5 dollars") into the last number in it.
    """
    if answer is None:
        return None
    boxed = last_boxed(answer)
    text = (boxed if boxed is not None else answer).replace("\u2212", "-")
    for wrapper in _WRAPPERS:
        text = text.replace(wrapper, "")
    text = _UNESCAPED_PERCENT_RE.sub(r"\\%", text).strip().rstrip(".").strip()
    if any(word.lower() not in _MATH_WORDS for word in _WORD_RE.findall(text)):
        text = last_number(_UNIT_POWER_RE.sub("", text)) or text
    if not text or len(text) > MAX_ANSWER_CHARS or _brace_depth(text) > MAX_BRACE_DEPTH:
        return None
    return text


def _squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@functools.lru_cache(maxsize=8192)  # a group of k completions often repeats the same answer
def math_equal(pred: str | None, gold: str | None, timeout: float = 1.0) -> bool:
    """Is the answer `pred` equal to `gold` (both from `math_form`)? Never raises; bounded in time.

    When math-verify cannot parse `gold`, falls back to comparing the two as normalised text.
    """
    if not pred or not gold:
        return False
    if _squashed(pred) == _squashed(gold):
        return True
    pred_number, gold_number = as_number(pred), as_number(gold)
    if pred_number is not None and gold_number is not None:
        return pred_number == gold_number  # the common GSM8K case, decided without sympy
    same_text = normalise(pred) == normalise(gold)
    verdict = mathcheck.equivalent(gold, pred, timeout)
    return same_text if verdict is None else verdict


def _references(answer, reward: str) -> list:
    if answer is None:
        raise UserError(
            f"reward '{reward}' needs the reference answer in a dataset column named 'answer'; "
            "map one with data.answer in the recipe"
        )
    return answer


def _math_accuracy_scores(completions, answer=None, *, timeout: float, **columns) -> list[float | None]:
    scores = []
    for completion, reference in zip(completions, _references(answer, "math_accuracy"), strict=True):
        if reference is None:
            scores.append(None)
            continue
        pred, gold = math_form(model_answer(completion_text(completion))), math_form(reference_answer(reference))
        scores.append(float(math_equal(pred, gold, timeout)))
    return scores


def math_accuracy(timeout: float = 1.0):
    r"""1.0 when the model's final answer is mathematically equal to the reference, else 0.0.

    The model's answer is the last `<answer>...</answer>` block, else the last `\boxed{}`, else the last
    number in the completion. The reference may be a bare answer or a GSM8K solution ending in
    `#### 1,234`. Equality is math-verify's: `\frac12` = `0.5`, `1,234` = `1234`, `$5` = `5 dollars`
    = `5`, `50\%` = `0.5`, `\sqrt{2}/2` = `\frac{\sqrt2}{2}`, intervals and tuples.

    When math-verify cannot parse the reference (say `\frac{`), the score is 1.0 only if the answer is
    the same text, case and spacing aside. A reference or answer that is empty, or longer than 400
    characters once reduced to its number, scores 0.0; a row whose reference is None scores None.
    Each comparison is cut off after `timeout` seconds (scoring 0.0), from any thread.
    """
    if not timeout > 0:
        raise UserError(f"reward 'math_accuracy': timeout must be > 0 seconds, got {timeout}; fix it")
    if importlib.util.find_spec("math_verify") is None:
        raise UserError("reward 'math_accuracy' needs the math-verify package; pip install 'math-verify>=0.8'")
    return functools.partial(_math_accuracy_scores, timeout=float(timeout))


def _exact_score(text: str, reference) -> float:
    answer = tag_content(text, "answer")
    answer, reference = normalise(text if answer is None else answer), normalise(reference_answer(reference))
    answer_number, reference_number = as_number(answer), as_number(reference)
    if answer_number is not None and reference_number is not None:
        return float(answer_number == reference_number)
    return float(answer == reference)


def _exact_match_scores(completions, answer=None, **columns) -> list[float | None]:
    return [
        None if ref is None else _exact_score(completion_text(c), ref)
        for c, ref in zip(completions, _references(answer, "exact_match"), strict=True)
    ]


def exact_match():
    """1.0 when the answer is the reference as text or number, else 0.0; for short answers ("46").

    The answer is the last `<answer>` block if there is one, else the whole completion. Both sides
    are trimmed, case-folded, spaces collapsed and a trailing period dropped; numbers compare by
    value, so "42.0" = "42" and "1,000" = "1000". A GSM8K reference gives its `#### ...` part.
    """
    return _exact_match_scores
