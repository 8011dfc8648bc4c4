"""Rule rewards: the scores a user would see in `rewards/<name>/mean`, and the errors a recipe gets."""

import asyncio
import os
import pickle
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tinyalign.core.errors import UserError
from tinyalign.rewards import REWARDS, RewardError, guard, mathcheck, names, resolve
from tinyalign.rewards.text import completion_text


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def score(spec, completions, **columns) -> list:
    return resolve(spec)(completions=completions, **columns)


def score_both(spec, text: str, **columns) -> float:
    """Score one completion given as a plain string and as a chat message; both must agree."""
    plain = score(spec, [text], **columns)
    as_chat = score(spec, [chat(text)], **columns)
    assert plain == as_chat, (plain, as_chat)
    return plain[0]


# --------------------------------------------------------------------------- completions


def test_completion_text_reads_strings_chat_messages_and_content_parts():
    assert completion_text("42") == "42"
    assert completion_text(chat("42")) == "42"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "4"}, {"type": "text", "text": "2"}]}]) == "42"
    assert completion_text([]) == "" and completion_text(None) == ""


# --------------------------------------------------------------------------- format


GOOD = "<think>7 * 6 = 42</think>\n<answer>42</answer>"


@pytest.mark.parametrize(
    "text, soft, strict",
    [
        (GOOD, 1.0, 1.0),
        ("  <think>a</think>  <answer>42</answer>\n", 1.0, 1.0),
        ("Sure! " + GOOD + " Hope this helps.", 1.0, 0.0),
        ("<think>a</think> so <answer>42</answer>", 1.0, 0.0),
        ("<answer>42</answer><think>a</think>", 0.0, 0.0),  # wrong order
        ("<think>a</think>", 0.0, 0.0),  # no answer
        ("<think>a</think><answer>  </answer>", 0.0, 0.0),  # empty answer is a free format point
        ("<think>a</think><think>b</think><answer>42</answer>", 0.0, 0.0),  # twice
        ("<think>a</think><answer>4</answer><answer>2</answer>", 0.0, 0.0),
        ("<think>a<answer>42</answer></think>", 0.0, 0.0),  # answer inside the reasoning
        ("42", 0.0, 0.0),
    ],
)
def test_think_format_soft_and_strict(text, soft, strict):
    assert score_both("think_format", text) == soft
    assert score_both({"name": "think_format", "strict": True}, text) == strict


def test_answer_format_wants_one_answer_block_and_strict_wants_it_last():
    assert score_both("answer_format", "reasoning... <answer>42</answer>") == 1.0
    assert score_both("answer_format", "<answer>4</answer> no, <answer>2</answer>") == 0.0
    assert score_both("answer_format", "<answer>42") == 0.0
    assert score_both("answer_format", "<answer>42</answer> and more talk") == 1.0
    assert score_both({"name": "answer_format", "strict": True}, "<answer>42</answer> and more talk") == 0.0
    assert score_both({"name": "answer_format", "strict": True}, "reasoning <answer>42</answer>\n") == 1.0


# --------------------------------------------------------------------------- math_accuracy

MATH_SOLUTION = "Using the unit circle, " * 200 + r"so $\sin 60^\circ = \boxed{\dfrac{\sqrt{3}}{2}}$."
GSM8K_REFERENCE = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)


@pytest.mark.parametrize(
    "completion, reference",
    [
        (r"<answer>\frac12</answer>", "0.5"),
        (r"<answer>0.5</answer>", r"\frac{1}{2}"),
        (r"<answer>\dfrac{3}{4}</answer>", "0.75"),
        ("<answer>1,234</answer>", "1234"),
        ("<answer>1234</answer>", "The total is 1,234 apples. #### 1,234"),
        (r"so the answer is \boxed{7}.", "7"),
        (r"<answer>$\boxed{7}$</answer>", "7"),
        ("<answer>(1, 2)</answer>", "(1,2)"),
        (r"<answer>\sqrt{2}/2</answer>", r"\frac{\sqrt{2}}{2}"),
        (r"<answer>2\pi</answer>", r"2 \pi"),
        ("<answer>$18</answer>", GSM8K_REFERENCE),
        ("<answer>18 dollars</answer>", GSM8K_REFERENCE),
        (r"<answer>\$18.00</answer>", GSM8K_REFERENCE),
        ("<answer>50%</answer>", "0.5"),
        ("<answer>The total is 1,234.</answer>", "1234"),
        ("<answer>12 cm^2</answer>", "12"),
        ("<answer>x = 5</answer>", "5"),
        ("<answer>x^2 + 1</answer>", "1 + x^2"),
        ("<answer>\u22123</answer>", "-3"),  # typographic minus
        (r"<answer>\frac{\sqrt3}{2}</answer>", MATH_SOLUTION),  # a long solution: its last box counts
        (r"<answer>\begin{pmatrix} 2 \\ 1 \end{pmatrix}</answer>", r"\begin{pmatrix}2\\1\end{pmatrix}"),
        ("First 3 eggs, then 4, so 42 in all.", "42"),  # last number, no tags
    ],
)
def test_math_accuracy_accepts_equivalent_answers(completion, reference):
    assert score_both("math_accuracy", completion, answer=[reference]) == 1.0


@pytest.mark.parametrize(
    "completion, reference",
    [
        (r"<answer>\frac{1}{3}</answer>", "0.5"),
        ("<answer>17</answer>", GSM8K_REFERENCE),
        ("<answer>1,235</answer>", "1234"),
        (r"<answer>\sqrt{3}/2</answer>", r"\frac{\sqrt{2}}{2}"),
        (r"<answer>\pi</answer>", r"2\pi"),
        ("<answer>(2, 1)</answer>", "(1, 2)"),
        (r"<answer>\frac{1}{2}</answer>", MATH_SOLUTION),
        (r"<answer>\begin{pmatrix} 1 \\ 2 \end{pmatrix}</answer>", r"\begin{pmatrix}2\\1\end{pmatrix}"),
        ("<think>the answer is 18</think> or maybe 17", GSM8K_REFERENCE),  # no tags: the last number counts
        ("I do not know.", "18"),
        ("", "18"),
    ],
)
def test_math_accuracy_rejects_wrong_or_missing_answers(completion, reference):
    assert score_both("math_accuracy", completion, answer=[reference]) == 0.0


def test_math_accuracy_prefers_answer_tags_then_boxed_then_last_number():
    text = r"try \boxed{3} ... final 5 <answer>4</answer> 6"
    assert score("math_accuracy", [text] * 3, answer=["4", "3", "6"]) == [1.0, 0.0, 0.0]
    assert score("math_accuracy", [r"\boxed{3} then 5"] * 2, answer=["3", "5"]) == [1.0, 0.0]


def test_math_accuracy_unparseable_reference_falls_back_to_text_match():
    reference = r"\frac{"  # math-verify cannot parse this
    assert score("math_accuracy", [r"<answer>\frac{</answer>", "<answer>7</answer>"], answer=[reference] * 2) == [1.0, 0.0]


def test_math_accuracy_scores_none_without_a_reference_and_names_a_missing_column():
    assert score("math_accuracy", ["<answer>7</answer>", "7"], answer=[None, "7"]) == [None, 1.0]
    with pytest.raises(UserError, match=r"math_accuracy.*'answer'.*data\.answer"):
        score("math_accuracy", ["7"], solution=["7"])


def test_math_accuracy_is_bounded_on_explosive_answers_from_a_worker_thread():
    explosive = [r"<answer>9^{9^{9^{9}}}</answer>", r"<answer>2^{2^{30}}</answer>", r"<answer>(10^{10})!</answer>",
                 r"<answer>(x+1)^{1000}</answer>", "<answer>" + r"\frac{" * 12 + "1" + "}{2}" * 12 + "</answer>"]
    reward = resolve("math_accuracy")

    def timed(text):
        start = time.perf_counter()
        result = reward(completions=[text], answer=["5"])
        return result, time.perf_counter() - start

    reward(completions=["<answer>1/2</answer>"], answer=["0.5"])  # start the math-verify process
    with ThreadPoolExecutor(max_workers=3) as pool:
        for result, seconds in pool.map(timed, explosive):
            assert result == [0.0]
            assert seconds < 2.0


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals to freeze the worker")
def test_math_check_kills_and_replaces_a_stuck_worker():
    assert mathcheck.equivalent("0.5", r"\frac12") is True
    os.kill(mathcheck._worker.process.pid, signal.SIGSTOP)  # stuck where no timer can reach it
    start = time.perf_counter()
    assert mathcheck.equivalent("0.5", r"\frac{1}{2}", timeout=0.2) is False
    assert time.perf_counter() - start < 0.2 + mathcheck.GRACE_SECONDS + 0.5
    assert mathcheck.equivalent("0.5", r"\frac{2}{4}") is True  # a fresh worker took over


# --------------------------------------------------------------------------- exact_match


@pytest.mark.parametrize(
    "completion, reference, expected",
    [
        ("46", "46", 1.0),
        (" 46\n", "46", 1.0),
        ("42.0", "42", 1.0),
        ("1,000", "1000", 1.0),
        ("<answer>Paris.</answer>", "paris", 1.0),
        ("The   Eiffel\nTower", "the eiffel tower", 1.0),
        ("<answer>46</answer>", "blah #### 46", 1.0),
        ("45", "46", 0.0),
        ("46 apples", "46", 0.0),  # exact: no extraction beyond the answer tags
        ("", "46", 0.0),
    ],
)
def test_exact_match(completion, reference, expected):
    assert score_both("exact_match", completion, answer=[reference]) == expected


# --------------------------------------------------------------------------- length and repetition


def test_overlong_is_dapo_soft_punishment_in_tokens_or_characters():
    spec = {"name": "overlong", "max_len": 10, "buffer": 4}
    ids = [[0] * n for n in (3, 6, 8, 10, 11)]
    assert score(spec, ["x"] * 5, completion_ids=ids) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert score(spec, ["a" * 8, chat("a" * 11)]) == [-0.5, -1.0]  # no ids: characters
    assert resolve({"name": "overlong", "max_len": 400}).params == {"max_len": 400}  # buffer defaults to 100
    assert score({"name": "overlong", "max_len": 400}, ["x"], completion_ids=[[0] * 350]) == [-0.5]


def test_length_penalty_pulls_both_ways_towards_the_target():
    spec = {"name": "length_penalty", "target": 100, "scale": 50}
    ids = [[0] * n for n in (100, 75, 125, 150, 10, 1000)]
    assert score(spec, ["x"] * 6, completion_ids=ids) == [0.0, -0.5, -0.5, -1.0, -1.0, -1.0]


def test_repetition_penalises_looping_output():
    looping = "the cat sat " * 20
    varied = "one two three four five six seven eight nine ten"
    scores = score("repetition", [looping, chat(varied), "too short"])
    assert scores[0] < -0.9 and scores[1:] == [0.0, 0.0]
    assert score({"name": "repetition", "ngram": 1, "max_penalty": -0.5}, ["a a b b"]) == [-0.25]


# --------------------------------------------------------------------------- regex and json


def test_regex_match_search_and_full_match():
    assert score_both({"name": "regex_match", "pattern": r"\d+"}, "it is 42 now") == 1.0
    assert score_both({"name": "regex_match", "pattern": r"\d+", "full_match": True}, "it is 42 now") == 0.0
    assert score_both({"name": "regex_match", "pattern": r"\d+", "full_match": True}, " 42\n") == 1.0
    assert score_both({"name": "regex_match", "pattern": r"(?i)yes"}, "YES") == 1.0


@pytest.mark.parametrize(
    "completion, expected",
    [
        ('{"city": "Paris", "temp": 21}', 1.0),
        ('Here you go:\n```json\n{"city": "Paris", "temp": 21}\n```\nAnything else?', 1.0),
        ('<think>hmm</think><answer>{"city": "Paris", "temp": 21}</answer>', 1.0),
        ('{"city": "Paris"}', 0.0),  # a required key is missing
        ('["city", "temp"]', 0.0),  # not an object
        ("{city: Paris}", 0.0),
        ("```json\n{\"city\": 1, \"temp\": 2", 0.0),  # unclosed fence
        ("[" * 100_000, 0.0),  # nesting too deep for the parser
    ],
)
def test_json_valid_reads_fences_and_answer_tags_and_required_keys(completion, expected):
    assert score_both({"name": "json_valid", "required_keys": ["city", "temp"]}, completion) == expected


def test_json_valid_without_required_keys_accepts_any_json():
    assert score("json_valid", ["[1, 2]", "null", "nope"]) == [1.0, 1.0, 0.0]


# --------------------------------------------------------------------------- resolve


def test_resolve_names_the_reward_and_gives_kind_and_max_score():
    reward = resolve({"name": "math_accuracy", "weight": 2.0})
    assert reward.__name__ == "math_accuracy" and reward.kind == "accuracy" and reward.max_score == 1.0
    assert resolve({"name": "overlong", "max_len": 512, "buffer": 128}).kind == "penalty"
    assert resolve("think_format").max_score == 1.0
    assert {REWARDS[name].kind for name in names()} <= {"accuracy", "format", "penalty"}
    assert all(REWARDS[name].summary for name in names())


def test_resolved_rewards_look_right_to_trl_and_survive_pickling():
    from trl.trainer.utils import get_callable_name, is_async_callable

    for spec in ({"name": "overlong", "max_len": 8}, "math_accuracy", {"name": "regex_match", "pattern": "a+"}):
        reward = resolve(spec)
        assert get_callable_name(reward) == reward.__name__  # TRL logs rewards/<this>/mean
        assert not is_async_callable(reward)
        copy = pickle.loads(pickle.dumps(reward))
        assert copy.__name__ == reward.__name__ and copy(completions=["aaa"], answer=["1"]) == reward(completions=["aaa"], answer=["1"])


def test_every_builtin_takes_the_keywords_grpo_passes():
    # GRPOTrainer calls f(prompts=, completions=, completion_ids=, **columns, trainer_state=, log_extra=, log_metric=)
    prompts = [[{"role": "user", "content": "7*6?"}]] * 2
    completions = [chat("<think>7*6</think><answer>42</answer>"), chat("41")]
    trl_kwargs = dict(
        prompts=prompts, completion_ids=[[1] * 9, [2] * 2], answer=["42", "42"], question=["7*6?"] * 2,
        trainer_state=object(), log_extra=lambda column, values: None, log_metric=lambda name, value: None,
    )
    required = {"overlong": {"max_len": 8}, "length_penalty": {"target": 8}, "regex_match": {"pattern": "42"}}
    for name in names():
        scores = resolve({"name": name, **required.get(name, {})})(completions=completions, **trl_kwargs)
        assert len(scores) == 2 and all(isinstance(value, float) for value in scores), name
    assert resolve("math_accuracy")(completions=completions, **trl_kwargs) == [1.0, 0.0]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"name": "math_acuracy"}, r"unknown reward 'math_acuracy' \(did you mean 'math_accuracy'\?\); known rewards: .*think_format"),
        ({"name": "overlong", "max_lenght": 5}, r"reward 'overlong' has no parameter 'max_lenght' \(did you mean 'max_len'\?\); accepted parameters: max_len, buffer"),
        ({"name": "overlong", "max_len": "512"}, r"reward 'overlong': parameter 'max_len' must be an integer, got '512'"),
        ({"name": "overlong", "max_len": True}, r"parameter 'max_len' must be an integer"),
        ({"name": "overlong", "max_len": 512, "buffer": 1000}, r"reward 'overlong'.*buffer"),
        ({"name": "overlong"}, r"reward 'overlong' needs parameter 'max_len'"),
        ({"name": "think_format", "strict": "yes"}, r"parameter 'strict' must be true or false"),
        ({"name": "json_valid", "required_keys": "city"}, r"parameter 'required_keys' must be a list of strings or null"),
        ({"name": "exact_match", "case": True}, r"reward 'exact_match' has no parameter 'case'; accepted parameters: none"),
        ({"name": "regex_match", "pattern": "(unclosed"}, r"reward 'regex_match': pattern '\(unclosed' is not a valid regular expression"),
        ({"name": "repetition", "max_penalty": 1.0}, r"reward 'repetition'.*max_penalty"),
        ({"weight": 1.0}, r"a reward entry needs a name"),
        ("", r"a reward entry needs a name"),
        (["math_accuracy"], r"each reward must be a mapping"),
    ],
)
def test_resolve_errors_name_the_reward_and_the_fix(spec, expected):
    with pytest.raises(UserError, match=expected) as error:
        resolve(spec)
    assert "\n" not in str(error.value)


def test_reward_parameters_are_typed_as_recipe_keys_are():
    # one type check (config.types.coerce): an integer for a number is taken as a float, and YAML 1.1's
    # `1e0` (read as a string) as the number it spells
    assert resolve({"name": "repetition", "max_penalty": -1}).params["max_penalty"] == -1.0
    assert isinstance(resolve({"name": "repetition", "max_penalty": -1}).params["max_penalty"], float)
    assert resolve({"name": "math_accuracy", "timeout": "1e0"}).params["timeout"] == 1.0


# --------------------------------------------------------------------------- custom rewards


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent('''
        LIMIT = 3

        def short_answer(completions, limit=10, **kwargs):
            """1.0 for answers of at most `limit` characters."""
            return [1.0 if len(c) <= limit else 0.0 for c in completions]

        def strict_signature(completions, answer):
            return [0.0 for _ in completions]

        async def polite(completions, **kwargs):
            return [1.0 if "please" in c else 0.0 for c in completions]
    '''))
    (tmp_path / "broken_rewards.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


def test_custom_reward_is_imported_with_its_parameters_bound(custom_module):
    reward = resolve({"name": "my_rewards:short_answer", "weight": 0.3, "limit": 3, "max_score": 2.0})
    assert reward.__name__ == "my_rewards:short_answer" and reward.kind == "custom" and reward.max_score == 2.0
    assert reward(completions=["abc", "abcd"], prompts=["p", "p"]) == [1.0, 0.0]
    assert resolve("my_rewards.short_answer")(completions=["abcd"]) == [1.0]  # dotted form, default limit
    assert resolve("my_rewards:short_answer").max_score == 1.0


def test_async_custom_reward_stays_async_for_trl(custom_module):
    from trl.trainer.utils import is_async_callable

    reward = resolve("my_rewards:polite")
    assert is_async_callable(reward)
    assert asyncio.run(reward(completions=["please", "now"])) == [1.0, 0.0]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("no_such_package.rewards:fn", r"reward 'no_such_package.rewards:fn': cannot import module 'no_such_package.rewards' \(ModuleNotFoundError"),
        ("broken_rewards:fn", r"cannot import module 'broken_rewards' \(ModuleNotFoundError: No module named 'no_such_dependency_here'"),
        ("my_rewards:short_answr", r"'my_rewards' has no attribute 'short_answr' \(did you mean 'short_answer'\?\)"),
        ("my_rewards:LIMIT", r"reward 'my_rewards:LIMIT': 'LIMIT' is a int, not a function"),
        ({"name": "my_rewards:strict_signature", "limit": 3}, r"reward 'my_rewards:strict_signature' does not accept parameter 'limit'; its parameters: answer"),
        ({"name": "my_rewards:short_answer", "max_score": "high"}, r"max_score must be a number"),
        ("my_rewards:", r"write your own reward as 'package.module:function'"),
    ],
)
def test_custom_reward_errors_name_the_import_path(custom_module, spec, expected):
    with pytest.raises(UserError, match=expected):
        resolve(spec)


# --------------------------------------------------------------------------- guard


def fragile(completions, **kwargs):
    return [1.0 / len(c) for c in completions]  # ZeroDivisionError on an empty completion


def test_guard_names_the_reward_and_shows_the_offending_completion():
    reward = guard(fragile, "fragile")
    long_but_fine = "x" * 500
    with pytest.raises(RewardError) as error:
        reward(completions=[long_but_fine, "", "y"], answer=["1", "2", "3"])
    message = str(error.value)
    assert "reward 'fragile' failed on completion 1" in message and "ZeroDivisionError" in message

    def crash_on_long(completions, **kwargs):
        if any("BOOM" in c for c in completions):
            raise ValueError("cannot parse\nthis")
        return [0.0] * len(completions)

    with pytest.raises(RewardError) as error:
        guard(crash_on_long, "parser")(completions=["fine", "BOOM" + "z" * 1000])
    message = str(error.value)
    assert "reward 'parser' failed on completion 1 (ValueError: cannot parse this)" in message
    assert "'BOOM" + "z" * 196 + "...'" in message and "\n" not in message


def test_guard_catches_wrong_score_counts_and_types():
    with pytest.raises(RewardError, match=r"reward 'short' returned 1 scores for 3 completions"):
        guard(lambda completions, **kw: [1.0], "short")(completions=["a", "b", "c"])
    with pytest.raises(RewardError, match=r"reward 'scalar' returned float, expected a list of 2 scores"):
        guard(lambda completions, **kw: 1.0, "scalar")(completions=["a", "b"])
    with pytest.raises(RewardError, match=r"reward 'words' returned 'good' for completion 0"):
        guard(lambda completions, **kw: ["good"], "words")(completions=["a"])
    assert guard(lambda completions, **kw: (1, None), "ok")(completions=["a", "b"]) == [1, None]


def test_a_dataset_column_cannot_override_a_parameter():
    reward = resolve({"name": "regex_match", "pattern": "^yes$", "full_match": True})
    assert reward(completions=["yes"], pattern=["no"], full_match=[False]) == [1.0]
