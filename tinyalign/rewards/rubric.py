"""rubric_judge: a local judge model grades answers where no rule can (RM-R1 style).

For each distinct prompt the judge first says whether the task is chat or reasoning and writes a
short rubric for it; then it grades every answer against that rubric and ends with `SCORE: N/10`.
One rubric per prompt, shared by the group of answers GRPO compares, keeps the grading consistent
within the group, and a written rubric and grade make each score auditable.

The rubric and grade of each answer go to TRL's completions table (`log_extra`) and stay on the
judge (`.last`). A reply with no parseable score gets the neutral score and is counted (`.unparsed`,
and the `rubric_judge/unparsed` metric): a confused judge must not crash a training run.
"""

import re

from tinyalign.core.errors import UserError
from tinyalign.data.messages import MAX_CHARS, task_text
from tinyalign.rewards.judge_model import JudgeModel, judge_missing
from tinyalign.rewards.text import completion_text

SYSTEM = "You are a careful, strict grader of answers written by an AI assistant."

RUBRIC_PROMPT = """Read the task below. First decide what kind of task it is: "chat" (open-ended: \
helpfulness, clarity, tone, safety) or "reasoning" (it has a right answer: math, code, logic, facts). \
Then write a rubric: two to four short criteria a good answer to this task must meet, most important first.
Reply in exactly this form:
TYPE: chat or reasoning
RUBRIC:
- criterion
- criterion

Task:
{task}"""

GRADE_PROMPT = """Grade the answer below against the rubric. Check each criterion in one short sentence; \
for a reasoning task, check first whether the answer is correct. Then end with one line in exactly \
this form, where N is a whole number from 0 (useless) to 10 (meets every criterion):
SCORE: N/10

Task ({kind}):
{task}

Rubric:
{rubric}
{reference}
Answer to grade:
{answer}"""

# When the judge writes no rubric, grade against the criteria any answer must meet.
FALLBACK_RUBRIC = "- answers what the task asks\n- is correct\n- is clear and concise"

_TYPE_RE = re.compile(r"TYPE\W*(chat|reasoning)", re.IGNORECASE)
_RUBRIC_RE = re.compile(r"RUBRIC\W*?:[\s*_]*(.+)", re.IGNORECASE | re.DOTALL)
_SCORE_RE = re.compile(r"SCORE\W*?:\W*?(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)


def rubric_messages(task: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": RUBRIC_PROMPT.format(task=task)}]


def grade_messages(task: str, kind: str, rubric: str, answer: str, reference: str | None = None) -> list[dict]:
    reference = f"\nReference answer (known to be correct):\n{reference}\n" if reference else ""
    content = GRADE_PROMPT.format(task=task, kind=kind, rubric=rubric, reference=reference, answer=answer[:MAX_CHARS])
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


def parse_rubric(reply: str) -> tuple[str, str | None]:
    """(task kind: chat | reasoning | unknown, rubric text or None) from the judge's first reply."""
    kind = _TYPE_RE.search(reply)
    rubric = _RUBRIC_RE.search(reply)
    text = rubric.group(1).split("SCORE")[0].strip()[:1000] if rubric else ""
    return (kind.group(1).lower() if kind else "unknown"), (text or None)


def parse_score(reply: str) -> float | None:
    """The last `SCORE: N/10` (or N/M, or a bare N out of 10) as a share in [0, 1]; None if there is none."""
    matches = _SCORE_RE.findall(reply)
    if not matches:
        return None
    value, scale = matches[-1]
    value, scale = float(value), float(scale) if scale else 10.0
    if scale <= 0 or value > scale:
        return None
    return value / scale


class RubricJudge(JudgeModel):
    """The reward function: `judge(completions, prompts=..., answer=...) -> list[float]` in [0, 1]."""

    def __init__(self, judge: str, max_new_tokens: int, batch_size: int, neutral: float):
        super().__init__(judge, max_new_tokens, batch_size)
        self.neutral = neutral
        self.unparsed = 0  # judge replies with no score, over the judge's life
        self.graded = 0
        self.last: list[dict] = []  # kind, rubric, grade and score of each completion of the latest call

    def __call__(self, completions, prompts=None, answer=None, log_extra=None, log_metric=None, **_):
        if prompts is None:
            raise UserError("rubric_judge needs the prompts to judge answers against; call it with prompts=[...]")
        tasks = [task_text(p) for p in prompts]
        references = answer if isinstance(answer, list) else [None] * len(completions)

        # 1-2: task kind and rubric, once per distinct task (GRPO sends each prompt k times)
        distinct = list(dict.fromkeys(tasks))
        replies = self.ask([rubric_messages(t) for t in distinct])
        rubrics = {t: parse_rubric(r[0]) for t, r in zip(distinct, replies)}

        # 3-4: grade each answer against its task's rubric, ending in a parseable score
        texts = [completion_text(c) for c in completions]
        replies = self.ask([grade_messages(t, rubrics[t][0], rubrics[t][1] or FALLBACK_RUBRIC, a, r)
                            for t, a, r in zip(tasks, texts, references)])
        grades = [r[0] for r in replies]
        parsed = [parse_score(g) for g in grades]
        scores = [self.neutral if p is None else p for p in parsed]

        missing = sum(p is None for p in parsed)
        self.unparsed += missing
        self.graded += len(parsed)
        self.last = [{"kind": rubrics[t][0], "rubric": rubrics[t][1], "grade": g, "score": s, "parsed": p is not None}
                     for t, g, s, p in zip(tasks, grades, scores, parsed)]
        if log_extra is not None:
            log_extra("judge_rubric", [rubrics[t][1] or FALLBACK_RUBRIC for t in tasks])
            log_extra("judge_grade", grades)
        if log_metric is not None:
            log_metric("rubric_judge/unparsed", missing / max(1, len(parsed)))
        if missing:
            print(f"rubric_judge: {missing} of {len(parsed)} judge replies had no SCORE: N/10; scored "
                  f"{self.neutral} ({self.unparsed} of {self.graded} so far)")
        return scores


def rubric_judge(judge: str, max_new_tokens: int = 256, batch_size: int = 16, neutral: float = 0.5):
    """0..1 from a judge model that classifies the task, writes a rubric, grades against it (SCORE: N/10).

    `judge`: a model (hub id, local folder, tiny:qwen2-1m) or a run directory / checkpoint (its adapter
    on its base). Loaded on first use, once. Replies without a parseable score get `neutral`.
    """
    if judge_missing(judge):
        raise UserError(f"reward 'rubric_judge': judge model or run directory not found: {judge}")
    if not 0.0 <= neutral <= 1.0:
        raise UserError(f"reward 'rubric_judge': neutral must be between 0 and 1, got {neutral}")
    if max_new_tokens < 1 or batch_size < 1:
        raise UserError("reward 'rubric_judge': max_new_tokens and batch_size must be at least 1")
    return RubricJudge(judge, max_new_tokens, batch_size, float(neutral))
