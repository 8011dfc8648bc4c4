"""The loop's simulated annotators: a rule oracle that votes on policies' answers, as people do in the arena.

The annotators have a stated preference: a right answer in the requested style (the bare number) beats
a right number with extra text, which beats a wrong answer; when both answers are wrong they mark
"both bad" and write the right answer (an edit). Votes go through the app's vote store (tinyalign.votes),
so a reward model trains on exactly what real votes would give it.
"""

import random
from collections.abc import Callable
from pathlib import Path

from tinyalign.config.recipe import builtin


def grade(answer: str, reference: str) -> int:
    """2: the right answer as asked; 1: the right number first, then extra text; 0: wrong."""
    answer, reference = answer.strip(), reference.strip()
    if answer == reference:
        return 2
    head = answer.split()[0] if answer.split() else ""
    return 1 if head == reference or (answer.startswith(reference) and not answer[len(reference)].isdigit()) else 0


def grade_reply(answer: str, reference: str) -> int:
    """A chat model's sums: 2: the bare number, as the system prompt asks; 1: the right final number (the
    math_accuracy reward's judgement) with words around it; 0: wrong."""
    from tinyalign.rewards.accuracy import math_equal, math_form, model_answer

    if answer.strip().rstrip(".") == reference:
        return 2
    return 1 if math_equal(math_form(model_answer(answer)), math_form(reference)) else 0


def oracle(response_a: str, response_b: str, reference: str, rule=grade, edit: str | None = None
           ) -> tuple[str, str | None]:
    """(vote, edited answer or None), as an annotator in the arena would give them.

    `rule(answer, reference)` grades each answer (higher is better, 0 is wrong; default: the addition
    task's `grade`); when both are wrong the edit is `edit`, else the reference itself."""
    a, b = rule(response_a, reference), rule(response_b, reference)
    if a == b == 0:
        return "both_bad", reference if edit is None else edit
    if a == b:
        return "tie", None
    return ("a" if a > b else "b"), None


def record_votes(db, pairs: list[dict], settings: dict, rule=grade) -> dict:
    """Each pair voted by the oracle under `rule` and recorded in the vote store `db`; {votes, by_vote}.

    A pair: conversation, response_a/b, model_a/b, run_dir_a/b and reference, and optionally the
    `edit` written when both answers are wrong (default: the reference)."""
    from tinyalign.votes import VoteStore

    by_vote = {}
    with VoteStore(db) as store:
        for pair in pairs:
            a, b = pair["response_a"], pair["response_b"]
            vote, edited = oracle(a, b, pair["reference"], rule, pair.get("edit"))
            store.record(conversation=pair["conversation"], response_a=a, response_b=b, model_a=pair["model_a"],
                         model_b=pair["model_b"], run_dir_a=pair["run_dir_a"], run_dir_b=pair["run_dir_b"],
                         vote=vote, edited=edited, annotator="oracle", settings=settings)
            by_vote[vote] = by_vote.get(vote, 0) + 1
    return {"votes": len(pairs), "by_vote": by_vote}


def annotate(db, policies: dict[str, "str | None"], prompts: int, seed: int = 0,
             recipe_file: "str | Path" = builtin("tiny_sft.yaml"), rule: Callable[[str, str], int] = grade) -> dict:
    """Each training prompt answered by the policies (two samples when there is one), voted by the oracle.

    `policies`: name -> run directory, or None for the base model. Returns {votes, by_vote}.
    """
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generate
    from tinyalign.votes import VoteStore

    VoteStore.check(db)  # before minutes of answers, not when the first vote is stored
    recipe = recipes.load(recipe_file)
    train, _ = data.splits(recipe.data, recipe.seed)
    rows = train.shuffle(seed=seed).select(range(min(prompts, len(train))))
    template = recipe.data.answer or recipe.data.completion
    questions = [data.prompt_messages(recipe.data, row) for row in rows]
    references = [template.format_map(row) for row in rows]
    from transformers import set_seed

    adapters = {name: path for name, path in policies.items() if path}
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    set_seed(seed)  # the same answers on a machine with the same torch thread count (float sums differ with it)
    settings = {"temperature": 1.0, "max_new_tokens": recipe.generation.get("max_new_tokens", 16)}
    answers = {}
    for name in policies:
        with model.answering_as(policy, name, adapters):
            answers[name] = generate(policy, tokenizer, questions, k=2 if len(policies) == 1 else 1,
                                     desc=f"answers: {name}", **settings)
    names = list(policies)
    rng = random.Random(seed)
    pairs = []
    for i, (question, reference) in enumerate(zip(questions, references)):
        if len(names) == 1:
            (model_a, a), (model_b, b) = [(names[0], x) for x in answers[names[0]][i]]
        else:
            (model_a, a), (model_b, b) = rng.sample([(n, answers[n][i][0]) for n in names[:2]], 2)
        pairs.append({"conversation": question, "response_a": a, "response_b": b, "model_a": model_a,
                      "model_b": model_b, "run_dir_a": policies[model_a], "run_dir_b": policies[model_b],
                      "reference": reference})
    return record_votes(db, pairs, settings, rule)
