"""A pairwise chain-of-rubrics judge (RM-R1 in miniature), and `pairwise_judge`, the GRPO reward on it.

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
import time

from tinyalign.core.errors import UserError
from tinyalign.data.messages import MAX_CHARS, task_text
from tinyalign.models.precision import autocast
from tinyalign.rewards.accuracy import exact_match, math_accuracy
from tinyalign.rewards.judge_model import JudgeModel, judge_missing
from tinyalign.rewards.text import completion_text

# Short on purpose: a small judge must hold it, the task and both answers in its context.
PAIR_PROMPT = """Which answer to the task is better? Reply in exactly this form:
TYPE: chat or reasoning
SOLUTION: your own solution and final answer (reasoning) or a rubric of 2-4 criteria (chat)
EVALUATION: answer A, then answer B, checked against it
VERDICT: [[A]], [[B]] or [[tie]]

Task: {task}
Answer A: {a}
Answer B: {b}"""

VERDICTS = ("A", "B", "tie")
_VERDICT_RE = re.compile(r"VERDICT\W*?:?\W*?(?:\[\[\s*)?(A|B|tie)\b", re.IGNORECASE)


def guided_head(kind: str, solution: str) -> str:
    """A guided judgement up to the verdict's letter: the judge's type and solution in the fixed form."""
    return f"TYPE: {kind}\nSOLUTION: {solution}\nVERDICT: [["


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
    """

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

    def guided(self, pairs: list[tuple[str, str, str]]) -> list[str]:
        """One judgement per (task, a, b), written field by field: the harness writes the headings, the
        judge its choice of type, its own solution (reference-guided judging) and its choice of verdict."""
        from tinyalign.models.generate import render

        _, tokenizer = self.load()
        starts = [render(tokenizer, pair_messages(*pair)) for pair in pairs]
        kinds = self.choose([s + "TYPE: " for s in starts], ("reasoning", "chat"))
        # One solution per task, shared by both orders and every answer of a GRPO group: solved once, and
        # the two orders differ only in the answers' places, so position bias is not a different solution.
        tasks = list(dict.fromkeys(t for t, _, _ in pairs))
        solutions = dict(zip(tasks, self.solve(tasks)))
        heads = [guided_head(kind, solutions[task]) for kind, (task, _, _) in zip(kinds, pairs)]
        verdicts = self.choose([s + h for s, h in zip(starts, heads)], VERDICTS)
        return [f"{head}{verdict}]]" for head, verdict in zip(heads, verdicts)]

    def judgements(self, pairs: list[tuple[str, str, str]], k: int = 1, desc: str | None = None
                   ) -> list[list[tuple[str, bool]]]:
        """k judgements per (task, a, b): (text ending in a verdict, whether the judge wrote it in the form)."""
        replies = self.ask([pair_messages(*pair) for pair in pairs], k, desc=desc)
        missing = [(i, j) for i, group in enumerate(replies) for j, r in enumerate(group) if parse_verdict(r) is None]
        if missing and desc:  # a command, not a reward inside training: say what the next wait is
            print(f"{len(missing)} of {len(pairs) * k} judgements have no VERDICT line: redoing them guided "
                  "(counted as unparsed)", flush=True)
        redone = self.guided([pairs[i] for i, _ in missing]) if missing else []
        judged = [[(reply, True) for reply in group] for group in replies]
        for (i, j), text in zip(missing, redone):
            judged[i][j] = (text, False)
        return judged

    def compare(self, triples: list[tuple[str, str, str]], desc: str | None = None) -> list[dict]:
        """One outcome per (task, x, y): combine()'s dict, the two judgements and how many lacked the form."""
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


def agreement_with_votes(judge: "str | PairJudge", pairs, max_new_tokens: int = 256, batch_size: int = 16) -> dict:
    """agreement() of a judge over voted (task, chosen, rejected) pairs.

    `judge`: a model or judge run, or a PairJudge already made (its model loads once, however often asked)."""
    if isinstance(judge, str):
        judge = PairJudge(judge, max_new_tokens, batch_size)
    return agreement(judge.compare(pairs, desc="judging"))


# the rules that may check a judge's verdicts (logged, never rewarded)
CHECKERS = {"math_accuracy": math_accuracy, "exact_match": exact_match}
IDENTICAL = {"winner": "tie", "position_bias": False, "unparsed": 0,
             "judgements": ["(the same answer twice: not judged)\nVERDICT: [[tie]]"] * 2}


def flipped(outcome: dict) -> dict:
    """An outcome of (task, y, x) read as one of (task, x, y)."""
    return {**outcome, "winner": {"x": "y", "y": "x"}.get(outcome["winner"], outcome["winner"]),
            "judgements": outcome["judgements"][::-1]}


class PairwiseJudgeReward:
    """The GRPO reward: each completion judged against its group's others (or, `against: reference`, the
    reference answer), scored by its win rate: wins + half the ties, over the comparisons it was in.

    A step's comparisons cost a judge call only once each: identical answers tie without one, and a pair
    of distinct answers met more than once (a sure policy repeats itself) is judged once, in both orders.
    With a `checker` (an accuracy reward's name) and the `answer` column, the share of the judge's decisive
    verdicts that the checker agrees with is logged per step: whether the judge is right about what the
    policy writes now, not about old votes. The checker never enters the reward."""

    def __init__(self, judge: PairJudge, opponents: int, against: str = "group", checker=None):
        self.judge, self.opponents, self.against, self.checker = judge, opponents, against, checker
        self.unparsed = self.judged = 0

    def pairs(self, tasks: list[str], references) -> list[tuple[int, int]]:
        """(i, j) completion indices to compare; j = -1 - i for completion i against its reference."""
        if self.against == "reference":
            return [(i, -1 - i) for i in range(len(tasks))]
        groups: dict[str, list[int]] = {}
        for i, task in enumerate(tasks):
            groups.setdefault(task, []).append(i)
        pairs = []
        for members in groups.values():  # rings: every answer meets up to `opponents` others of its group
            met = set()
            for step in range(1, min(self.opponents, len(members) - 1) + 1):
                for k in range(len(members)):
                    pair = (members[k], members[(k + step) % len(members)])
                    if frozenset(pair) not in met:  # half-way round a ring meets the same pairs twice
                        met.add(frozenset(pair))
                        pairs.append(pair)
        return pairs

    def judge_once(self, triples: list[tuple[str, str, str]]) -> tuple[list[dict], int]:
        """One outcome per (task, x, y), each distinct pair of distinct answers judged once; (outcomes, calls)."""
        asked: dict[tuple, int] = {}
        keys = []
        for task, x, y in triples:
            if x.strip() == y.strip():
                keys.append(None)
                continue
            key = (task, y, x) if (task, y, x) in asked else (task, x, y)
            asked.setdefault(key, len(asked))
            keys.append(key)
        judged = self.judge.compare(list(asked)) if asked else []
        outcomes = []
        for (task, x, y), key in zip(triples, keys):
            if key is None:
                outcomes.append(IDENTICAL)
            else:
                outcome = judged[asked[key]]
                outcomes.append(outcome if key[1] == x else flipped(outcome))
        return outcomes, judged

    def __call__(self, completions, prompts=None, answer=None, log_extra=None, log_metric=None, **_):
        if prompts is None:
            raise UserError("pairwise_judge needs the prompts to judge answers against; call it with prompts=[...]")
        started = time.perf_counter()
        tasks = [task_text(p) for p in prompts]
        texts = [completion_text(c) for c in completions]
        references = answer if isinstance(answer, list) else None
        if self.against == "reference" and references is None:
            raise UserError("pairwise_judge with against: reference needs the data's `answer` column")
        pairs = self.pairs(tasks, references)
        answer_of = lambda j: texts[j] if j >= 0 else references[-1 - j]
        outcomes, judged = self.judge_once([(tasks[i], texts[i], answer_of(j)) for i, j in pairs])

        points = [0.0] * len(texts)
        games = [0] * len(texts)
        logs = [[] for _ in texts]
        for (i, j), outcome in zip(pairs, outcomes):
            share = {"x": 1.0, "y": 0.0, "tie": 0.5, None: 0.5}[outcome["winner"]]
            for side, won in ((i, share), (j, 1.0 - share)):
                if side >= 0:
                    points[side] += won
                    games[side] += 1
                    logs[side].append(outcome["judgements"][0])
        missing = sum(o["unparsed"] for o in judged)
        self.unparsed += missing
        self.judged += 2 * len(judged)
        if log_extra is not None:
            log_extra("judge_verdicts", ["\n---\n".join(entry) for entry in logs])
        if log_metric is not None:
            log_metric("pairwise_judge/unparsed", missing / max(1, 2 * len(judged)))
            log_metric("pairwise_judge/position_bias", sum(o["position_bias"] for o in judged) / max(1, len(judged)))
            log_metric("pairwise_judge/judged", len(judged) / max(1, len(pairs)))  # the rest tied or met before
            log_metric("pairwise_judge/seconds", time.perf_counter() - started)  # the reward's cost, beside the step's
            agreement = self.checker_agreement(pairs, outcomes, completions, references)
            if agreement is not None:
                log_metric("pairwise_judge/checker_agreement", agreement)
        return [p / g if g else 0.5 for p, g in zip(points, games)]

    def checker_agreement(self, pairs, outcomes, completions, references) -> "float | None":
        """Of the decisive verdicts on pairs the checker tells apart, the share naming the answer it scores higher."""
        if self.checker is None or references is None:
            return None
        scores = self.checker(completions, answer=references)
        agree = told = 0
        for (i, j), outcome in zip(pairs, outcomes):
            if j < 0 or outcome["winner"] not in ("x", "y") or scores[i] == scores[j]:
                continue
            told += 1
            agree += (outcome["winner"] == "x") == (scores[i] > scores[j])
        return agree / told if told else None


def pairwise_judge(judge: str, opponents: int = 2, max_new_tokens: int = 256, batch_size: int = 16,
                   against: str = "group", checker: "str | None" = None):
    """0..1: win rate under a pairwise chain-of-rubrics judge, against the group's answers or the reference.

    `judge`: a model (hub id, local folder) or a judge run directory (tinyalign.judge). Every
    comparison is asked in both orders. `against`: group (each completion meets `opponents` other answers
    of its group: the judge never sees the reference, which is the rule's) or reference (each meets the
    data's `answer`). `checker`: an accuracy reward (e.g. math_accuracy) whose agreement with the judge's
    verdicts is logged per step as pairwise_judge/checker_agreement; it never enters the reward.
    """
    if judge_missing(judge):
        raise UserError(f"reward 'pairwise_judge': judge model or run directory not found: {judge}")
    if opponents < 1 or max_new_tokens < 1 or batch_size < 1:
        raise UserError("reward 'pairwise_judge': opponents, max_new_tokens and batch_size must be at least 1")
    if against not in ("group", "reference"):
        raise UserError(f"reward 'pairwise_judge': against must be group or reference, not {against!r}")
    if checker is not None and checker not in CHECKERS:
        raise UserError(f"reward 'pairwise_judge': checker must be one of {', '.join(CHECKERS)}, not {checker!r}")
    check = CHECKERS[checker]() if checker else None
    return PairwiseJudgeReward(PairJudge(judge, max_new_tokens, batch_size), opponents, against, check)


def _verdict_scores(completions, answer, **_):
    return [float(parse_verdict(completion_text(c)) == str(a).strip()) for c, a in zip(completions, answer)]


def judge_verdict():
    """1.0 when a judgement's VERDICT names the side people chose (the `answer` column: A, B or tie), else 0.0.

    The verifiable reward that trains a pairwise judge with GRPO (tinyalign.judge verdicts).
    """
    return _verdict_scores
