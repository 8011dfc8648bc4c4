"""The real-model demo's task: held-out problems share no number with training, and every worked
solution's arithmetic and final answer are right."""

import re

from tinyalign.config import recipe as recipes
from tinyalign.data import loading as data
from tinyalign.data import word_problems


def numbers_in(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", text)}


def test_held_out_problems_share_no_number_with_training():
    split = word_problems.rows()
    train = set().union(*(numbers_in(r["question"]) for r in split["train"]))
    test = set().union(*(numbers_in(r["question"]) for r in split["test"]))
    assert len(split["train"]) == 2000 and len(split["test"]) == 300
    assert train and test and not train & test
    assert {r["steps"] for r in split["test"]} == {1, 2}  # both kinds are held out


def test_every_solution_computes_its_answer_and_no_count_goes_negative():
    for row in word_problems.rows()["train"] + word_problems.rows()["test"]:
        for left, sign, right, result in re.findall(r"(\d+) ([+-]) (\d+) = (\d+)", row["solution"]):
            assert int(left) + (int(right) if sign == "+" else -int(right)) == int(result), row
        assert row["solution"].endswith(f"The answer is {row['answer']}.")
        assert int(row["answer"]) >= 0
        # the solution works on the question's numbers, in the order the story gives them
        steps = re.findall(r"(\d+) [+-] (\d+) =", row["solution"])
        operands = [int(steps[0][0])] + [int(right) for _, right in steps]
        assert operands == [int(n) for n in re.findall(r"\d+", row["question"])], row


def test_the_demo_recipes_read_the_built_in_task():
    for name in ("smollm2_word_sft.yaml", "smollm2_word_grpo.yaml"):
        recipe = recipes.load(recipes.builtin(name))
        rows = data.eval_rows(recipe.data, limit=5, seed=recipe.seed)
        assert len(rows) == 5 and rows[0]["answer"].isdigit()
        assert "The answer is" not in rows[0]["prompt"][-1]["content"]
