"""Grade-school word problems, generated offline from templates: the real-model demo's task.

    data: {source: tiny:word-problems, prompt: "{question}", answer: "{answer}"}

One and two operations (add, take away, both), several phrasings, names and things. The held-out
split shares no number with the training split: every number in a training problem is in 2-9, 20-29
or 40-49, every number in a held-out one in 10-19 or 30-39, so a held-out gain is arithmetic and
reading, not recall of seen problems. Small numbers on purpose: a 135M model's sums of two 2-digit
numbers are already mostly wrong.
"""

import random

NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jack", "Kira", "Liam",
         "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara"]
THINGS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards", "stamps", "cookies"]

# (template, signs): the answer is a, then each sign applied to b (and c) in turn. Every template names
# its numbers once, so the split's number ranges decide every number the model reads.
ONE_STEP = [
    ("{n} has {a} {t}. {n} gets {b} more. How many {t} does {n} have now?", (+1,)),
    ("There are {a} {t} in a box and {b} {t} on the table. How many {t} are there in all?", (+1,)),
    ("{n} collected {a} {t} on Monday and {b} {t} on Tuesday. How many {t} did {n} collect?", (+1,)),
    ("{n} had {a} {t} and gave {b} of them away. How many {t} does {n} have left?", (-1,)),
    ("A jar holds {a} {t}. {n} takes out {b}. How many {t} are still in the jar?", (-1,)),
    ("{n} has {a} {t} and needs {b} more to have as many as a friend. How many {t} does the friend have?", (+1,)),
]
TWO_STEP = [
    ("{n} has {a} {t}, buys {b} more, then gives {c} away. How many {t} does {n} have now?", (+1, -1)),
    ("A shelf holds {a} {t}. {n} adds {b} and then adds {c} more. How many {t} are on the shelf?", (+1, +1)),
    ("{n} had {a} {t}, lost {b} of them and then found {c}. How many {t} does {n} have now?", (-1, +1)),
    ("There were {a} {t}. {n} used {b} and then {c} more. How many {t} are left?", (-1, -1)),
]
TRAIN_RANGES = ((2, 9), (20, 29), (40, 49))
TEST_RANGES = ((10, 19), (30, 39))
SIZES = {"train": 2000, "test": 300}
TWO_STEP_SHARE = 0.4


def _number(rng: random.Random, ranges: tuple[tuple[int, int], ...]) -> int:
    low, high = rng.choice(ranges)
    return rng.randint(low, high)


def problem(rng: random.Random, ranges: tuple[tuple[int, int], ...]) -> dict:
    """One problem whose numbers are all in `ranges`; no count ever goes below zero."""
    templates = TWO_STEP if rng.random() < TWO_STEP_SHARE else ONE_STEP
    template, signs = rng.choice(templates)
    while True:
        numbers = [_number(rng, ranges) for _ in range(len(signs) + 1)]
        running = [numbers[0]]
        for sign, n in zip(signs, numbers[1:]):
            running.append(running[-1] + sign * n)
        if min(running) >= 0:
            break
    values = dict(zip("abc", numbers))
    question = template.format(n=rng.choice(NAMES), t=rng.choice(THINGS), **values)
    return {"question": question, "answer": str(running[-1]), "solution": solution(numbers, signs),
            "steps": len(signs)}


def solution(numbers: list[int], signs: tuple[int, ...]) -> str:
    """The worked answer a teacher would write: "32 - 15 = 17, 17 + 9 = 26. The answer is 26." """
    steps, total = [], numbers[0]
    for sign, n in zip(signs, numbers[1:]):
        new = total + sign * n
        steps.append(f"{total} {'+' if sign > 0 else '-'} {n} = {new}")
        total = new
    return f"{', '.join(steps)}. The answer is {total}."


def rows(seed: int = 0) -> dict[str, list[dict]]:
    """{"train": 2000 problems, "test": 300}, each with question, answer, solution and steps; no repeated
    question."""
    rng = random.Random(seed)
    split = {}
    for name, ranges in (("train", TRAIN_RANGES), ("test", TEST_RANGES)):
        seen, out = set(), []
        while len(out) < SIZES[name]:
            row = problem(rng, ranges)
            if row["question"] not in seen:
                seen.add(row["question"])
                out.append(row)
        split[name] = out
    return split
