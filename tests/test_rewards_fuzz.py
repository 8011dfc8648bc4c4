"""Fuzz: whatever a policy emits, every built-in reward returns in-range scores, quickly, without raising.

A GRPO run scores millions of completions, and a policy under pressure emits degenerate text: power
towers, 100k-character loops, unbalanced braces, stray tags. One exception or one hang there costs
the run. Run with `-s` to see the slowest single call measured.
"""

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyalign.rewards import resolve

BOUND_SECONDS = 2.0  # per call of one reward on a handful of completions; generous for slow CI boxes

SPECS = [
    "think_format",
    {"name": "think_format", "strict": True},
    "answer_format",
    {"name": "answer_format", "strict": True},
    "math_accuracy",
    "exact_match",
    {"name": "regex_match", "pattern": r"\d+"},
    {"name": "regex_match", "pattern": r"<answer>.*</answer>", "full_match": True},
    {"name": "json_valid", "required_keys": ["a"]},
    "json_valid",
    {"name": "overlong", "max_len": 512},
    {"name": "length_penalty", "target": 200},
    "repetition",
]
REWARDS = [resolve(spec) for spec in SPECS]
MATH = resolve("math_accuracy")

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<answer", "answer>", r"\boxed{", r"\boxed", r"\fbox{",
    "{", "}", "{{", "}}", r"\frac{", r"\dfrac", r"\frac12", r"\sqrt{", r"\sqrt", r"\pi", r"\infty", r"\left(",
    r"\right)", r"\begin{pmatrix}", r"\end{pmatrix}", "&", r"\\", "$", "$$", r"\$", r"\(", r"\)", r"\[", r"\]",
    "%", r"\%", "^", "_", "!", "=", "<", ">", "/", "*", ",", ".", "-", "+", "(", ")", "[", "]", "#### ",
    "9^{9^{9}}", "2^{2^{30}}", "10^{10^{10}}", "(10^{10})!", "100000!", r"\binom{10^9}{5000}", "(x+1)^{999}",
    "1,234", "1,23,4", "0.5", "-0", "1e999", "NaN", "inf", "\u2212", "\u0663", "\U0001d7d9", "\u200b", "\x00",
    "```json\n", "```", '{"a": 1}', '{"a":', "null", " ", "\n", "\t", "dollars", "the answer is", "x", "y",
]
REFERENCES = ["42", "0.5", r"\frac{1}{2}", "#### 1,234", "(1, 2)", r"2\pi", "x^2+1", "Paris", "", "}{", r"\frac{"]

fragment_soup = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12), st.integers().map(str)), max_size=40
).map("".join)
huge_number = st.integers(min_value=1, max_value=100_000).map(lambda digits: "<answer>" + "9" * digits + "</answer>")
nested_latex = st.integers(min_value=1, max_value=400).map(lambda depth: "$" + r"\frac{" * depth + "1" + "}{2}" * depth + "$")
huge_output = st.tuples(fragment_soup, st.integers(min_value=1_000, max_value=100_000)).map(
    lambda piece_and_size: ((piece_and_size[0] or "ab ") * piece_and_size[1])[: piece_and_size[1]]
)
completion_texts = st.one_of(st.text(max_size=300), fragment_soup, huge_number, nested_latex, huge_output)
references = st.one_of(st.sampled_from(REFERENCES), fragment_soup, st.text(max_size=50), huge_number)

worst = {"seconds": 0.0, "reward": "", "text": ""}
_worst_lock = threading.Lock()


def timed_call(reward, completions, answers):
    start = time.perf_counter()
    scores = reward(completions=completions, answer=answers)
    seconds = time.perf_counter() - start
    with _worst_lock:
        if seconds > worst["seconds"]:
            worst.update(seconds=seconds, reward=reward.__name__, text=repr(str(completions[0])[:80]))
    return scores, seconds


def assert_sane(reward, scores, count, seconds):
    assert isinstance(scores, list) and len(scores) == count
    low, high = (-1.0, 0.0) if reward.kind == "penalty" else (0.0, reward.max_score)
    for value in scores:
        assert value is None or (math.isfinite(value) and low <= value <= high), (reward, value)
    assert seconds < BOUND_SECONDS, f"{reward.__name__} took {seconds:.2f} s"


@pytest.fixture(scope="module", autouse=True)
def warm_math_worker():
    # The math-verify child starts on the first comparison that reaches it (2-3 s measured on a busy 2-core
    # box), once, not per call. Plain numbers are compared without it, so the warm-up compares expressions.
    MATH(completions=["x+1"], answer=["1+x"])


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=completion_texts, reference=references, as_chat=st.booleans())
def test_every_reward_survives_any_completion(text, reference, as_chat):
    completion = [{"role": "assistant", "content": text}] if as_chat else text
    for reward in REWARDS:
        scores, seconds = timed_call(reward, [completion], [reference])
        assert_sane(reward, scores, 1, seconds)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="reward") as executor:
        yield executor


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=st.lists(completion_texts, min_size=1, max_size=4), reference=references)
def test_math_accuracy_from_worker_threads_is_bounded(pool, texts, reference):
    # Several threads at once: the math-verify child serves them in turn, each call still bounded.
    futures = [pool.submit(timed_call, MATH, [text], [reference]) for text in texts]
    for future in futures:
        scores, seconds = future.result()
        assert_sane(MATH, scores, 1, seconds)


# The inputs that were slow or fatal before the rewards were bounded: a 100k-digit number, deeply nested
# LaTeX, power towers and factorials a symbolic checker would expand, a 100k-character loop.
HARDEST = ["<answer>" + "9" * 100_000 + "</answer>", "$" + r"\frac{" * 400 + "1" + "}{2}" * 400 + "$",
           r"<answer>\boxed{9^{9^{9}}}</answer>", r"\boxed{10^{10^{10}}}", "<answer>(10^{10})!</answer>",
           r"\boxed{100000!}", r"\binom{10^9}{5000}", "<answer>(x+1)^{999}</answer>", "ab " * 33_334,
           "<think>" * 20_000, "1e999", "{" * 50_000]


@pytest.mark.parametrize("reference", ["42", r"\frac{1}{2}", "x^2+1"])
def test_every_reward_is_bounded_on_the_hardest_known_inputs(reference):
    # Measured: the slowest of these calls took 0.1-1.0 s (math_accuracy on the nested fraction, on a
    # busy box); the bound is BOUND_SECONDS, the per-call limit the fuzzers above hold every call to.
    slowest = (0.0, "")
    for reward in REWARDS:
        for text in HARDEST:
            scores, seconds = timed_call(reward, [text], [reference])
            assert_sane(reward, scores, 1, seconds)
            slowest = max(slowest, (seconds, f"{reward.__name__} on {text[:30]!r}"))
    print(f"\nslowest call against {reference!r}: {slowest[0]:.3f} s ({slowest[1]})")
