"""Structure rewards: does the output match a pattern, is it valid JSON with the keys we need?"""

import functools
import json
import re

from tinyalign.core.errors import UserError
from tinyalign.rewards.text import score_each, tag_content


def _regex_score(text: str, pattern: re.Pattern, full_match: bool) -> float:
    found = pattern.fullmatch(text.strip()) if full_match else pattern.search(text)
    return 1.0 if found else 0.0


def regex_match(pattern: str, full_match: bool = False):
    """1.0 when the completion matches the regular expression `pattern`, else 0.0.

    By default the pattern may match anywhere (`re.search`); `full_match: true` requires it to match
    the whole completion, leading and trailing whitespace aside. Python `re` syntax, flags inline
    (e.g. `(?i)` for case-insensitive). Beware patterns with nested repeats such as `(a+)+`: they can
    take exponential time on long outputs.
    """
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise UserError(
            f"reward 'regex_match': pattern {pattern!r} is not a valid regular expression ({e}); "
            "fix the pattern"
        ) from None
    return functools.partial(score_each, score=functools.partial(_regex_score, pattern=compiled, full_match=full_match))


def _fenced_block(text: str) -> str | None:
    """Body of the last ``` fenced block, without its language line (```json), or None."""
    close = text.rfind("```")
    open_ = text.rfind("```", 0, close) if close > 0 else -1
    if open_ < 0:
        return None
    body = text[open_ + 3 : close]
    first_line, newline, rest = body.partition("\n")
    return rest if newline and first_line.strip().isalnum() else body


def _json_score(text: str, required_keys: tuple[str, ...]) -> float:
    candidate = _fenced_block(text)
    if candidate is None:
        candidate = tag_content(text, "answer")
    if candidate is None:
        candidate = text
    try:
        value = json.loads(candidate)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return 0.0
    if required_keys and not (isinstance(value, dict) and all(key in value for key in required_keys)):
        return 0.0
    return 1.0


def json_valid(required_keys: list[str] | None = None):
    """1.0 when the output is valid JSON (and an object holding every key in `required_keys`), else 0.0.

    The JSON is read from the last ```json fenced block if there is one, else from the last
    `<answer>...</answer>` block, else from the whole completion.
    """
    return functools.partial(score_each, score=functools.partial(_json_score, required_keys=tuple(required_keys or ())))
