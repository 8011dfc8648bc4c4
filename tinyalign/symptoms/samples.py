"""GRPO symptoms read from the sampled completions (completions.jsonl), not the logged metrics: one answer
for every prompt, and answers that loop."""

from collections import Counter

from tinyalign.core.run_logs import Run
from tinyalign.data.messages import message_text
from tinyalign.symptoms.common import Finding, clip_gradients, scale
from tinyalign.symptoms.grpo import explore_more

LATE_COMPLETIONS_MIN = 16  # judge sampled completions only with this many from the last quarter of steps
IDENTICAL_SHARE = 0.6  # one completion text is >= 60 % of the late samples ...
IDENTICAL_MIN_PROMPTS = 3  # ... across >= 3 different prompts: one answer for every question
LOOP_SHARE = 0.3  # >= 30 % of late completions loop
LOOP_DISTINCT = 0.3  # a completion loops when under 30 % of its 4-grams are distinct (prose is > 90 %)
LOOP_MIN_WORDS = 16  # count word 4-grams from 16 words up ...
LOOP_MIN_CHARS = 32  # ... else character 4-grams from 32 characters up; shorter answers cannot loop


def identical_completions(run: Run) -> "Finding | None":
    late, since = _late_completions(run.completions)
    if len(late) < LATE_COMPLETIONS_MIN:
        return None
    texts = [_text(c).strip() for c in late]
    top, count = Counter(texts).most_common(1)[0]
    prompts = {str(c.get("prompt")) for c, t in zip(late, texts) if t == top}
    if count < IDENTICAL_SHARE * len(late) or len(prompts) < IDENTICAL_MIN_PROMPTS:
        return None
    return Finding(
        "identical_completions",
        f"{count} of {len(late)} completions since step {since} are the same text, across {len(prompts)} prompts: {top[:60]!r}",
        "premature convergence, or a reward that pays one easy answer everywhere (a common label, an empty format)",
        "sample hotter and clip higher; add the rule that makes this answer wrong where it is wrong",
        explore_more(run),
    )


def looping_completions(run: Run) -> "Finding | None":
    late, since = _late_completions(run.completions)
    if len(late) < LATE_COMPLETIONS_MIN:
        return None
    loops = [c for c in late if _loops(_text(c))]
    if len(loops) < LOOP_SHARE * len(late):
        return None
    return Finding(
        "looping_completions",
        f"{len(loops)} of {len(late)} completions since step {since} repeat themselves, e.g. {_text(loops[0])[:60]!r}",
        "the learning rate is too high: the policy degenerates into repetition / gibberish",
        "lower the learning rate and clip gradients; a repetition penalty reward helps once it is stable",
        scale(run, "learning_rate", 0.5) + clip_gradients(run),
    )


def _late_completions(completions: list[dict]) -> tuple[list[dict], int]:
    """The completions sampled in the last quarter of the logged steps, and the step that quarter starts at."""
    steps = [c["step"] for c in completions if isinstance(c.get("step"), (int, float))]
    if not steps:
        return completions[-(len(completions) // 4) :] if completions else [], 0
    since = int(min(steps) + 0.75 * (max(steps) - min(steps)))
    return [c for c in completions if isinstance(c.get("step"), (int, float)) and c["step"] >= since], since


def _text(completion: dict) -> str:
    return message_text(completion.get("completion", ""), join=" ")  # chat form: its messages, spaced


def _loops(text: str) -> bool:
    words = text.split()
    units = words if len(words) >= LOOP_MIN_WORDS else list(text) if len(text) >= LOOP_MIN_CHARS else None
    if not units:
        return False
    grams = [tuple(units[i : i + 4]) for i in range(len(units) - 3)]
    return len(set(grams)) < LOOP_DISTINCT * len(grams)
