"""rubric_judge: what the judge is asked, how its verdict is read, and the real path with a tiny judge."""

import pickle

import pytest

from tinyalign.core.errors import UserError
from tinyalign.rewards import resolve
from tinyalign.rewards import rubric as judges

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a haiku about rain."}]
MATH = [{"role": "user", "content": "12+34"}]


@pytest.mark.parametrize("reply, score", [
    ("The answer meets both criteria.\nSCORE: 7/10", 0.7),
    ("**Score:** 8 / 10", 0.8),
    ("SCORE: 10/10", 1.0),
    ("SCORE: 0/10", 0.0),
    ("Score: 9 out of 10", 0.9),
    ("SCORE: 3", 0.3),  # the /10 is implied
    ("SCORE: 4/5", 0.8),
    ("first SCORE: 2/10, on reflection SCORE: 6/10", 0.6),  # the final verdict counts
    ("SCORE: 12/10", None),
    ("SCORE: N/10", None),
    ("SCORE: seven", None),
    ("\n\n\n", None),
    ("", None),
    ("46 (12+34)", None),
])
def test_parse_score_reads_the_fixed_form_and_nothing_else(reply, score):
    assert judges.parse_score(reply) == score


def test_parse_rubric_reads_the_kind_and_the_criteria():
    kind, rubric = judges.parse_rubric("TYPE: reasoning\nRUBRIC:\n- the sum is right\n- only the number")
    assert kind == "reasoning" and rubric == "- the sum is right\n- only the number"
    assert judges.parse_rubric("**Type:** Chat\n**Rubric:**\n- rhymes") == ("chat", "- rhymes")
    assert judges.parse_rubric("blah blah") == ("unknown", None)


def test_the_judge_is_asked_for_kind_rubric_grade_and_the_score_form():
    ask = judges.rubric_messages(judges.task_text(CHAT))[-1]["content"]
    assert '"chat"' in ask and '"reasoning"' in ask and "RUBRIC:" in ask
    assert "SYSTEM: Be brief.\nUSER: Write a haiku about rain." in ask  # the whole task, system prompt too
    grade = judges.grade_messages("12+34", "reasoning", "- right sum", "46", reference="46")[-1]["content"]
    assert "SCORE: N/10" in grade and "Task (reasoning):\n12+34" in grade
    assert "Rubric:\n- right sum" in grade and "Answer to grade:\n46" in grade
    assert "Reference answer (known to be correct):\n46" in grade
    assert "Reference" not in judges.grade_messages("t", "chat", "- r", "a")[-1]["content"]
    assert len(judges.grade_messages("t", "chat", "- r", "x" * 50_000)[-1]["content"]) < 6_000


def scripted_judge(monkeypatch, replies):
    """A rubric_judge whose model is replaced by canned replies; records each batch it was asked."""
    reward = resolve({"name": "rubric_judge", "judge": "tiny:qwen2-1m"})
    asked = []

    def ask(conversations, **_):
        asked.append(conversations)
        return [[replies(c[-1]["content"])] for c in conversations]  # one reply per conversation, as generate gives

    monkeypatch.setattr(reward.fn, "ask", ask)
    return reward, asked


def test_one_rubric_per_prompt_one_grade_per_answer_in_two_batches(monkeypatch):
    def replies(question):
        if "RUBRIC:\n- criterion" in question:
            return "TYPE: reasoning\nRUBRIC:\n- the sum is right"
        return "Correct.\nSCORE: 9/10" if "Answer to grade:\n46" in question else "Wrong sum.\nSCORE: 1/10"

    reward, asked = scripted_judge(monkeypatch, replies)
    logged, metrics = {}, {}
    scores = reward(["46", "47", "46", "45"], prompts=[MATH] * 4, answer=["46"] * 4,
                    log_extra=logged.__setitem__, log_metric=metrics.__setitem__)
    assert scores == [0.9, 0.1, 0.9, 0.1]
    assert [len(batch) for batch in asked] == [1, 4]  # the prompt's rubric once, shared by its group
    assert logged["judge_rubric"] == ["- the sum is right"] * 4
    assert logged["judge_grade"][1] == "Wrong sum.\nSCORE: 1/10"
    assert metrics == {"rubric_judge/unparsed": 0.0}
    assert reward.fn.last[0] == {"kind": "reasoning", "rubric": "- the sum is right", "grade": "Correct.\nSCORE: 9/10",
                                 "score": 0.9, "parsed": True}


def test_garbage_from_the_judge_scores_neutral_and_is_counted(monkeypatch, capsys):
    reward, _ = scripted_judge(monkeypatch, lambda question: "\n\n46 (12+34)")
    logged, metrics = {}, {}
    scores = reward(["46", "a poem"], prompts=[MATH, CHAT], log_extra=logged.__setitem__,
                    log_metric=metrics.__setitem__)
    assert scores == [0.5, 0.5]
    assert reward.fn.unparsed == 2 and metrics == {"rubric_judge/unparsed": 1.0}
    assert logged["judge_rubric"] == [judges.FALLBACK_RUBRIC] * 2  # no rubric written: the fallback was used
    assert "2 of 2 judge replies had no SCORE" in capsys.readouterr().out
    reward(["46"], prompts=[MATH])
    assert reward.fn.unparsed == 3 and reward.fn.graded == 3  # a running count


@pytest.mark.parametrize("spec, message", [
    ({"name": "rubric_judge"}, "reward 'rubric_judge' needs parameter 'judge'"),
    ({"name": "rubric_judge", "judge": "/nope/judge"}, "judge model or run directory not found: /nope/judge"),
    ({"name": "rubric_judge", "judge": "tiny:qwen2-1m", "neutral": 2}, "neutral must be between 0 and 1"),
    ({"name": "rubric_jugde", "judge": "x"}, "did you mean 'rubric_judge'"),
])
def test_recipe_mistakes_are_caught_when_the_recipe_is_read(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(spec)


def test_a_tiny_judge_runs_end_to_end_and_loads_once(tiny_sft_run):
    # The judge is a run directory: its adapter on its base. Its grades are poor; the path must work.
    reward = resolve({"name": "rubric_judge", "judge": str(tiny_sft_run), "max_new_tokens": 24})
    assert reward.kind == "custom" and reward.max_score == 1.0
    logged = {}
    scores = reward(["46", "47", "Rain on the roof"], prompts=[MATH, MATH, CHAT], answer=["46", "46", None],
                    log_extra=logged.__setitem__)
    # Each score is what its logged grade says, and a grade without one scores neutral and is counted.
    grades = logged["judge_grade"]
    assert scores == [0.5 if judges.parse_score(g) is None else judges.parse_score(g) for g in grades], grades
    assert reward.fn.graded == 3 and reward.fn.unparsed == sum(judges.parse_score(g) is None for g in grades)
    # An addition model never writes the judging form (measured: all three replies unparsed, scored 0.5),
    # so what reaches the policy here is the neutral score, not a grade.
    assert scores == [0.5] * 3 and reward.fn.unparsed == 3, grades
    first = reward.fn._model
    reward(["46"], prompts=[MATH])
    assert reward.fn._model is first  # loaded once, reused
    copy = pickle.loads(pickle.dumps(reward))  # picklable like the rule rewards; the model is not copied
    assert copy.fn._model is None and copy.fn.judge == str(tiny_sft_run)
