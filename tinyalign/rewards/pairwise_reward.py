"""`pairwise_judge`, the GRPO reward on a pairwise judge (tinyalign/rewards/pairwise.py): each answer's win
rate against others of its group, at a reward's cost, with the checker's agreement logged per step."""

import time

from tinyalign.core.errors import UserError
from tinyalign.data.messages import task_text
from tinyalign.rewards.accuracy import exact_match, math_accuracy
from tinyalign.rewards.judge_model import judge_missing
from tinyalign.rewards.pairwise import PairJudge, parse_verdict
from tinyalign.rewards.text import completion_text

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
    of distinct answers met more than once (a sure policy repeats itself) is judged once, in both orders
    (or, `orders: 1`, in one).
    With a `checker` (an accuracy reward's name) and the `answer` column, the share of the judge's decisive
    verdicts that the checker agrees with is logged per step: whether the judge is right about what the
    policy writes now, not about old votes. The checker never enters the reward."""

    def __init__(self, judge: PairJudge, opponents: int, against: str = "group", checker=None, orders: int = 2):
        self.judge, self.opponents, self.against, self.checker, self.orders = judge, opponents, against, checker, orders
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
        """One outcome per (task, x, y), each distinct pair of distinct answers judged once; (outcomes, the judged)."""
        asked: dict[tuple, int] = {}
        keys = []
        for task, x, y in triples:
            if x.strip() == y.strip():
                keys.append(None)
                continue
            key = (task, y, x) if (task, y, x) in asked else (task, x, y)
            asked.setdefault(key, len(asked))
            keys.append(key)
        judged = self.judge.compare(list(asked), orders=self.orders) if asked else []
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
        calls = sum(len(o["judgements"]) for o in judged)
        self.unparsed += missing
        self.judged += calls
        if log_extra is not None:
            log_extra("judge_verdicts", ["\n---\n".join(entry) for entry in logs])
        if log_metric is not None:
            log_metric("pairwise_judge/unparsed", missing / max(1, calls))
            if self.orders == 2:
                biased = sum(o["position_bias"] for o in judged)
                log_metric("pairwise_judge/position_bias", biased / max(1, len(judged)))
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
                   against: str = "group", checker: "str | None" = None, solve_first: bool = True, orders: int = 2):
    """0..1: win rate under a pairwise chain-of-rubrics judge, against the group's answers or the reference.

    `judge`: a model (hub id, local folder) or a judge run directory (tinyalign.judge). Every
    comparison is asked in both orders. `against`: group (each completion meets `opponents` other answers
    of its group: the judge never sees the reference, which is the rule's) or reference (each meets the
    data's `answer`). `checker`: an accuracy reward (e.g. math_accuracy) whose agreement with the judge's
    verdicts is logged per step as pairwise_judge/checker_agreement; it never enters the reward.
    `solve_first` (default): the judge writes its solution to each task before it reads the group's answers
    (PairJudge); false asks it inline, its solution written beside the answers, which a policy learns to steer.
    `orders`: 2 asks every pair in both orders; 1 once (half the cost), for a judge measured position-fair.
    """
    if judge_missing(judge):
        raise UserError(f"reward 'pairwise_judge': judge model or run directory not found: {judge}")
    if opponents < 1 or max_new_tokens < 1 or batch_size < 1:
        raise UserError("reward 'pairwise_judge': opponents, max_new_tokens and batch_size must be at least 1")
    if orders not in (1, 2):
        raise UserError(f"reward 'pairwise_judge': orders must be 1 or 2, not {orders!r}")
    if against not in ("group", "reference"):
        raise UserError(f"reward 'pairwise_judge': against must be group or reference, not {against!r}")
    if checker is not None and checker not in CHECKERS:
        raise UserError(f"reward 'pairwise_judge': checker must be one of {', '.join(CHECKERS)}, not {checker!r}")
    check = CHECKERS[checker]() if checker else None
    judging = PairJudge(judge, max_new_tokens, batch_size, solve_first=solve_first)
    return PairwiseJudgeReward(judging, opponents, against, check, orders)


def _verdict_scores(completions, answer, **_):
    return [float(parse_verdict(completion_text(c)) == str(a).strip()) for c, a in zip(completions, answer)]


def judge_verdict():
    """1.0 when a judgement's VERDICT names the side people chose (the `answer` column: A, B or tie), else 0.0.

    The verifiable reward that trains a pairwise judge with GRPO (tinyalign.judge verdicts).
    """
    return _verdict_scores
