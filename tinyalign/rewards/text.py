"""Text helpers shared by the rewards: get the text out of a completion, find the answer in it.

Everything here is linear in the length of the text (`rfind`, single regex passes), because rewards
run on whatever a policy emits, including 100k-character degenerate outputs.
"""

import re
from decimal import Decimal, InvalidOperation

from tinyalign.data.messages import message_text

# A number as people write answers: optional sign, thousands groups or plain digits, optional decimals.
NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_RE = re.compile(NUMBER)
_WHOLE_NUMBER_RE = re.compile(rf"(?:{NUMBER})")
_SPACES_RE = re.compile(r"\s+")


def completion_text(completion) -> str:
    """The text of one completion, as TRL passes it.

    Plain prompts give a string; chat prompts give a list of messages such as
    `[{"role": "assistant", "content": "..."}]`, whose last message is the model's reply. A message's
    content may itself be a list of parts (`{"type": "text", "text": ...}`), whose texts are joined.
    (tinyalign.data.messages.message_text, the one rule for messages as text.)
    """
    return message_text(completion)


def tag_content(text: str, tag: str) -> str | None:
    """Content of the last `<tag>...</tag>` block, or None when there is no closed block."""
    close = text.rfind(f"</{tag}>")
    if close < 0:
        return None
    open_ = text.rfind(f"<{tag}>", 0, close)
    if open_ < 0:
        return None
    return text[open_ + len(tag) + 2 : close]


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`) with balanced braces, else None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or text[start:brace].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None  # unbalanced: the model never closed its box


def last_number(text: str) -> str | None:
    """The last number written in `text` (e.g. "1,234", "-3.5"), or None."""
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    return last.group(0) if last else None


def reference_answer(reference) -> str:
    """The final answer inside a reference: GSM8K's "...reasoning... #### 1,234" gives "1,234"."""
    reference = "" if reference is None else str(reference)
    marker = reference.rfind("####")
    return (reference[marker + 4 :] if marker >= 0 else reference).strip()


def as_number(text: str) -> Decimal | None:
    """`text` as an exact number when it is nothing but one ("42", "42.0", "1,000", "-.5"), else None."""
    text = text.strip().replace("\u2212", "-")  # U+2212 is the typographic minus sign
    if not _WHOLE_NUMBER_RE.fullmatch(text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def normalise(text: str) -> str:
    """Loose text form for comparisons: trimmed, case-folded, spaces collapsed, no trailing period."""
    return _SPACES_RE.sub(" ", text).strip().casefold().rstrip(".").rstrip()


def score_each(completions, *, score, **columns) -> list[float]:
    """Apply `score(text) -> float` to every completion; the reward shape of text-only rules."""
    return [score(completion_text(c)) for c in completions]
