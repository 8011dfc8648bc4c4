"""A pairwise chain-of-rubrics judge (RM-R1 in miniature); `pairwise_judge`, the GRPO reward on it, is in
tinyalign/rewards/pairwise_reward.py.

For a task and two answers the judge writes, in a fixed form: the task type (chat or reasoning);
for reasoning its own solution, for chat a rubric; an evaluation of both answers against it; then
`VERDICT: [[A]]`, `[[B]]` or `[[tie]]`. Every pair is asked in both orders: a judge that prefers a
position says A (or B) both times, which cancels to a tie here and is counted as position bias.

The same prompt and parser serve the untrained judge, the training data that teaches it
(tinyalign.judge: rejection-sampled traces for SFT, verdict-matches-vote rows for GRPO) and the
reward, so a trained judge is asked exactly what it was trained on.
"""

import contextlib
import re

from tinyalign.data.messages import MAX_CHARS
from tinyalign.models.precision import autocast
from tinyalign.rewards.judge_model import JudgeModel

# Short on purpose: a small judge must hold it, the task and both answers in its context.
PAIR_PROMPT = """Which answer to the task is better? Reply in exactly this form:
TYPE: chat or reasoning
SOLUTION: your own solution and final answer (reasoning) or a rubric of 2-4 criteria (chat)
EVALUATION: answer A, then answer B, checked against it
VERDICT: [[A]], [[B]] or [[tie]]

Task: {task}
Answer A: {a}
Answer B: {b}"""

# Solve first (`solve_first`): the judge writes its TYPE and SOLUTION to the task alone, once per task,
# and they open its judgement of every pair; written beside the answers, a small judge's solution copies one.
SOLVE_PROMPT = """Before you read any answer, solve the task yourself. Reply in exactly this form:
TYPE: chat or reasoning
SOLUTION: your own solution and final answer (reasoning) or a rubric of 2-4 criteria (chat)

Task: {task}"""

VERDICTS = ("A", "B", "tie")
_VERDICT_RE = re.compile(r"VERDICT\W*?:?\W*?(?:\[\[\s*)?(A|B|tie)\b", re.IGNORECASE)
_HEAD_RE = re.compile(r"TYPE\W*(chat|reasoning)\b.*?SOLUTION\s*:\s*(.*?)\s*(?=\n\s*(?:TYPE|SOLUTION|EVALUATION|VERDICT)\b|$)",
                      re.IGNORECASE | re.DOTALL)  # the solution ends where the next heading starts


def head(kind: str, solution: str) -> str:
    """A judgement's opening lines: the judge's task type and its own solution (or rubric)."""
    return f"TYPE: {kind}\nSOLUTION: {solution}\n"


def opening(head_lines: str) -> str:
    """A solve-first judgement's start beside the answers: the task's TYPE and SOLUTION lines (heads()), then
    the heading the judge writes its evaluation after."""
    return head_lines + "EVALUATION:"


def guided_head(kind: str, solution: str) -> str:
    """A guided judgement up to the verdict's letter: the judge's type and solution in the fixed form."""
    return head(kind, solution) + "VERDICT: [["


def parse_head(reply: str) -> "tuple[str, str] | None":
    """(type, solution) from a reply to SOLVE_PROMPT; None when it lacks either."""
    found = _HEAD_RE.search(reply)
    if not found or not found.group(2).strip():
        return None
    return found.group(1).lower(), found.group(2).strip()


def solve_messages(task: str) -> list[dict]:
    return [{"role": "user", "content": SOLVE_PROMPT.format(task=task[:MAX_CHARS])}]


def pair_messages(task: str, a: str, b: str) -> list[dict]:
    # No system message: a GRPO recipe's prompt template then rebuilds exactly this conversation.
    return [{"role": "user", "content": PAIR_PROMPT.format(task=task, a=a[:MAX_CHARS], b=b[:MAX_CHARS])}]


def parse_verdict(reply: str) -> str | None:
    """"A", "B" or "tie" from the last VERDICT line of a judgement; None when there is none."""
    found = _VERDICT_RE.findall(reply)
    if not found:
        return None
    verdict = found[-1]
    return "tie" if verdict.lower() == "tie" else verdict.upper()


def combine(first: str | None, second: str | None) -> dict:
    """One pair's outcome from its two judgements: `first` with (x, y) shown as (A, B), `second` swapped.

    Returns {"winner": "x" | "y" | "tie" | None, "position_bias": bool}. A judge that names the same
    position both times has said nothing about the answers: a tie, flagged. One unparsed judgement
    leaves the other's; two leave None.
    """
    as_x = {"A": "x", "B": "y", "tie": "tie"}
    votes = [as_x.get(first), {"A": "y", "B": "x", "tie": "tie"}.get(second)]
    votes = [v for v in votes if v is not None]
    biased = first is not None and first == second and first != "tie"
    if not votes:
        return {"winner": None, "position_bias": False}
    if biased or len(set(votes)) > 1:
        winner = "tie" if biased or "tie" not in votes else next(v for v in votes if v != "tie")
        return {"winner": winner, "position_bias": biased}
    return {"winner": votes[0], "position_bias": False}


class PairJudge(JudgeModel):
    """A judge model: `judge.compare([(task, x, y), ...]) -> [outcome, ...]`, each pair in both orders.

    A judgement without a VERDICT line is written again, guided, from what the judge can do: its
    choice of task type after "TYPE: ", its own answer to the task as the SOLUTION (reference-guided
    judging), then its choice of A, B or tie after "VERDICT: [[" (likeliest, or drawn when
    sampling). So a small or untrained judge still gives its own verdict, and its position bias can
    be measured; such judgements are counted as unparsed. Loaded on first use.

    With `solve_first`, the TYPE and SOLUTION lines of every judgement of a task are the judge's reply to
    the task alone (SOLVE_PROMPT), asked once per task; the judge writes only the EVALUATION and VERDICT
    beside the answers. A reply without both lines is written guided, as above.
    """

    def __init__(self, judge: str, max_new_tokens: int = 256, batch_size: int = 16, temperature: float = 0.0,
                 solve_first: bool = False):
        super().__init__(judge, max_new_tokens, batch_size, temperature)
        self.solve_first = solve_first
        self.solved: dict[str, str] = {}  # task -> heads() of a greedy judge

    def choose(self, texts: list[str], options: tuple[str, ...]) -> list[str]:
        """The judge's next choice among `options` after each text (rendered chat plus reply so far)."""
        import torch

        judge, tokenizer = self.load()
        first = [tokenizer(o, add_special_tokens=False).input_ids[0] for o in options]
        tokenizer.padding_side = "left"
        device = next(judge.parameters()).device
        chosen = []
        with torch.inference_mode(), autocast(judge):
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(device)
                logits = judge(**batch).logits[:, -1, first].float()
                if self.temperature > 0:
                    picks = torch.multinomial(torch.softmax(logits / self.temperature, -1), 1)[:, 0]
                else:
                    picks = logits.argmax(-1)
                chosen += [options[i] for i in picks.tolist()]
        return chosen

    def solve(self, tasks: list[str]) -> list[str]:
        """The first line of the judge's base model's own answer to each task: its reference solution.

        Asked without the judge's adapter, as a plain question: a judge trained on judging prompts
        answers everything as a judgement, but its base still solves the task as before.
        """
        judge, _ = self.load()
        plain = judge.disable_adapter() if hasattr(judge, "disable_adapter") else contextlib.nullcontext()
        with plain:
            answers = self.ask([[{"role": "user", "content": task}] for task in tasks], max_new_tokens=64)
        return [(a[0].strip().splitlines() or [""])[0] for a in answers]

    def guided(self, pairs: list[tuple[str, str, str]], heads: "dict[str, str] | None" = None) -> list[str]:
        """One judgement per (task, a, b), written field by field: the harness writes the headings, the
        judge its choice of type, its own solution (reference-guided judging) and its choice of verdict.
        `heads`: each task's TYPE and SOLUTION lines already written (solve first)."""
        from tinyalign.models.generate import render

        _, tokenizer = self.load()
        starts = [render(tokenizer, pair_messages(*pair)) for pair in pairs]
        if heads is None:
            kinds = self.choose([s + "TYPE: " for s in starts], ("reasoning", "chat"))
            # One solution per task, shared by both orders and every answer of a GRPO group: solved once, and
            # the two orders differ only in the answers' places, so position bias is not a different solution.
            tasks = list(dict.fromkeys(t for t, _, _ in pairs))
            solutions = dict(zip(tasks, self.solve(tasks)))
            opened = [guided_head(kind, solutions[task]) for kind, (task, _, _) in zip(kinds, pairs)]
        else:
            opened = [heads[task] + "VERDICT: [[" for task, _, _ in pairs]
        verdicts = self.choose([s + h for s, h in zip(starts, opened)], VERDICTS)
        return [f"{opening}{verdict}]]" for opening, verdict in zip(opened, verdicts)]

    def heads(self, tasks: list[str], desc: str | None = None) -> dict[str, str]:
        """Each distinct task's TYPE and SOLUTION lines, the judge's reply to the task alone; written guided
        (its choice of type, its base model's answer) where the reply lacks them. A greedy judge's are kept,
        so a task is solved once however often it is judged."""
        from tinyalign.models.generate import render

        tasks = list(dict.fromkeys(tasks))
        new = [t for t in tasks if t not in self.solved]
        replies = self.ask([solve_messages(t) for t in new], desc=desc) if new else []
        parsed = dict(zip(new, (parse_head(r[0]) for r in replies)))
        missing = [t for t in new if parsed[t] is None]
        if missing:
            _, tokenizer = self.load()
            kinds = self.choose([render(tokenizer, solve_messages(t)) + "TYPE: " for t in missing], ("reasoning", "chat"))
            parsed.update(zip(missing, zip(kinds, self.solve(missing))))
        written = {task: head(*parsed[task]) for task in new}
        if self.temperature == 0:
            self.solved.update(written)
        return {task: written[task] if task in written else self.solved[task] for task in tasks}

    def replies(self, pairs: list[tuple[str, str, str]], k: int, desc: str | None
                ) -> "tuple[list[list[str]], dict[str, str] | None]":
        """k judgements per pair as the judge writes them, and the solve-first heads they open with (or None)."""
        if not self.solve_first:
            return self.ask([pair_messages(*pair) for pair in pairs], k, desc=desc), None
        from tinyalign.models.generate import render

        heads = self.heads([task for task, _, _ in pairs], desc=desc and "solving each task first")
        _, tokenizer = self.load()
        opened = [opening(heads[pair[0]]) for pair in pairs]
        written = self.ask_after([render(tokenizer, pair_messages(*pair)) + start
                                  for pair, start in zip(pairs, opened)], k, desc)
        return [[start + reply for reply in group] for start, group in zip(opened, written)], heads

    def judgements(self, pairs: list[tuple[str, str, str]], k: int = 1, desc: str | None = None
                   ) -> list[list[tuple[str, bool]]]:
        """k judgements per (task, a, b): (text ending in a verdict, whether the judge wrote it in the form)."""
        replies, heads = self.replies(pairs, k, desc)
        missing = [(i, j) for i, group in enumerate(replies) for j, r in enumerate(group) if parse_verdict(r) is None]
        if missing and desc:  # a command, not a reward inside training: say what the next wait is
            print(f"{len(missing)} of {len(pairs) * k} judgements have no VERDICT line: redoing them guided "
                  "(counted as unparsed)", flush=True)
        redo = [pairs[i] for i, _ in missing]
        redone = self.guided(redo, heads) if missing else []
        judged = [[(reply, True) for reply in group] for group in replies]
        for (i, j), text in zip(missing, redone):
            judged[i][j] = (text, False)
        return judged

    def compare(self, triples: list[tuple[str, str, str]], desc: str | None = None, orders: int = 2) -> list[dict]:
        """One outcome per (task, x, y): combine()'s dict, the judgements and how many lacked the form.

        `orders=1` asks each pair once, x shown first in every other pair: half the cost, for a judge measured
        position-fair in both orders; its outcomes then cannot show position bias."""
        if orders == 1:
            shown = [(t, x, y) if i % 2 == 0 else (t, y, x) for i, (t, x, y) in enumerate(triples)]
            outcomes = []
            for i, (text, wrote) in enumerate(group[0] for group in self.judgements(shown, desc=desc)):
                verdicts = (None, parse_verdict(text)) if i % 2 else (parse_verdict(text), None)  # the order asked
                outcomes.append({**combine(*verdicts), "judgements": [text], "unparsed": 1 - wrote})
            return outcomes
        both = [pair for task, x, y in triples for pair in ((task, x, y), (task, y, x))]
        judged = [group[0] for group in self.judgements(both, desc=desc)]
        outcomes = []
        for (first, wrote_first), (second, wrote_second) in zip(judged[::2], judged[1::2]):
            outcomes.append({**combine(parse_verdict(first), parse_verdict(second)), "judgements": [first, second],
                             "unparsed": 2 - wrote_first - wrote_second})
        return outcomes


def agreement(outcomes: list[dict]) -> dict:
    """Held-out figures for outcomes of (task, chosen, rejected) pairs: how often the judge agrees
    with the people (picks chosen), calls a tie, shows position bias, or writes no verdict."""
    n = max(1, len(outcomes))
    return {
        "pairs": len(outcomes),
        "agreement": sum(o["winner"] == "x" for o in outcomes) / n,
        "ties": sum(o["winner"] == "tie" for o in outcomes) / n,
        "position_bias": sum(o["position_bias"] for o in outcomes) / n,
        "unparsed": sum(o["unparsed"] for o in outcomes) / (2 * n),
    }


def agreement_with_votes(judge: "str | PairJudge", pairs, max_new_tokens: int = 256, batch_size: int = 16,
                         solve_first: bool = False) -> dict:
    """agreement() of a judge over voted (task, chosen, rejected) pairs.

    `judge`: a model or judge run, or a PairJudge already made (its model loads once, however often asked)."""
    if isinstance(judge, str):
        judge = PairJudge(judge, max_new_tokens, batch_size, solve_first=solve_first)
    return agreement(judge.compare(pairs, desc="judging"))
