"""The pairwise judge: how its verdict is read, how two orders combine, the reward and the data it trains on."""

import json
import pickle
import re

import pytest

from tinyalign import judge as judging
from tinyalign.core.errors import UserError
from tinyalign.prefs import VoteStore
from tinyalign.rewards import pairwise, resolve

MATH = [{"role": "user", "content": "12+34"}]


@pytest.mark.parametrize("reply, verdict", [
    ("TYPE: reasoning\nSOLUTION: 46\nEVALUATION: A right, B wrong\nVERDICT: [[A]]", "A"),
    ("VERDICT: [[B]]", "B"),
    ("**Verdict:** [[tie]]", "tie"),
    ("VERDICT: B", "B"),
    ("verdict: [[a]]", "A"),
    ("VERDICT: [[A]] ... on reflection VERDICT: [[B]]", "B"),  # the final verdict counts
    ("VERDICT: [[C]]", None),
    ("VERDICT: Answer", None),  # not the letter A
    ("A is better", None),
    ("", None),
])
def test_parse_verdict_reads_the_fixed_form_and_nothing_else(reply, verdict):
    assert pairwise.parse_verdict(reply) == verdict


@pytest.mark.parametrize("first, second, winner, biased", [
    ("A", "B", "x", False),   # x shown first won, and won again shown second
    ("B", "A", "y", False),
    ("A", "A", "tie", True),  # the first position won both times: nothing said about the answers
    ("B", "B", "tie", True),
    ("tie", "tie", "tie", False),
    ("A", None, "x", False),  # one judgement unreadable: the other decides
    (None, "A", "y", False),
    (None, None, None, False),
    ("A", "tie", "x", False),
])
def test_two_orders_combine_and_position_bias_cancels(first, second, winner, biased):
    assert pairwise.combine(first, second) == {"winner": winner, "position_bias": biased}


def scripted(monkeypatch, reply, **params):
    """A pairwise_judge reward whose judge model is `reply(prompt text) -> judgement`."""
    reward = resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "solve_first": False, **params})  # inline
    asked = []

    def ask(self, conversations, k=1, max_new_tokens=None, desc=None):
        asked.append(conversations)
        return [[reply(c[-1]["content"])] for c in conversations]

    monkeypatch.setattr(pairwise.PairJudge, "ask", ask)
    monkeypatch.setattr(pairwise.PairJudge, "guided", lambda self, pairs, heads=None: ["SOLUTION: 46\nVERDICT: [[A]]"] * len(pairs))
    return reward, asked


def shown(prompt):
    return re.search(r"Answer A: (.*)\nAnswer B: (.*)", prompt).groups()


def test_group_answers_are_scored_by_their_win_rate_in_both_orders(monkeypatch):
    # A judge that knows 12+34: the answer "46" wins, two wrong ones tie.
    def reply(prompt):
        a, b = shown(prompt)
        return "VERDICT: [[A]]" if a == "46" != b else "VERDICT: [[B]]" if b == "46" != a else "VERDICT: [[tie]]"

    reward, asked = scripted(monkeypatch, reply)
    logged, metrics = {}, {}
    scores = reward(["46", "45", "47", "46"], prompts=[MATH] * 4, log_extra=logged.__setitem__,
                    log_metric=metrics.__setitem__)
    # 2 opponents in a group of 4: 6 pairs (each answer plays 3). The two "46"s tie without a call, and
    # 46-45, 46-47 each come up twice: 3 distinct pairs, each asked once in both orders
    assert len(asked) == 1 and len(asked[0]) == 6
    assert scores == pytest.approx([2.5 / 3, 0.5 / 3, 0.5 / 3, 2.5 / 3])
    assert metrics.pop("pairwise_judge/seconds") >= 0
    assert metrics == {"pairwise_judge/unparsed": 0.0, "pairwise_judge/position_bias": 0.0, "pairwise_judge/judged": 0.5}
    assert len(logged["judge_verdicts"]) == 4 and "VERDICT" in logged["judge_verdicts"][0]


def test_with_a_reference_each_answer_meets_it_and_a_biased_judge_gives_ties(monkeypatch):
    reward, asked = scripted(monkeypatch, lambda prompt: "VERDICT: [[A]]", against="reference")  # always position A
    metrics = {}
    scores = reward(["46", "45"], prompts=[MATH] * 2, answer=["46", "46"], log_metric=metrics.__setitem__)
    # "46" against the reference "46" is the same answer twice: a tie without a call
    assert [shown(m[-1]["content"]) for m in asked[0]] == [("45", "46"), ("46", "45")]
    assert scores == [0.5, 0.5] and metrics["pairwise_judge/position_bias"] == 1.0


def test_by_default_the_judge_never_sees_the_reference_and_the_checker_only_watches(monkeypatch):
    # A judge gamed by length: the longer answer wins. The answers meet each other, never the reference;
    # the checker (the rule) is right about the judge being wrong, and the reward is the judge's alone.
    def reply(prompt):
        a, b = shown(prompt)
        return "VERDICT: [[A]]" if len(a) > len(b) else "VERDICT: [[B]]" if len(b) > len(a) else "VERDICT: [[tie]]"

    reward, asked = scripted(monkeypatch, reply, checker="exact_match")
    metrics = {}
    scores = reward(["46", "4545"], prompts=[MATH] * 2, answer=["46", "46"], log_metric=metrics.__setitem__)
    assert sorted(shown(m[-1]["content"]) for m in asked[0]) == [("4545", "46"), ("46", "4545")]
    assert scores == [0.0, 1.0]
    assert metrics["pairwise_judge/checker_agreement"] == 0.0


def test_a_step_of_identical_answers_asks_the_judge_nothing(monkeypatch):
    reward, asked = scripted(monkeypatch, lambda prompt: pytest.fail("judged identical answers"))
    metrics = {}
    assert reward(["46"] * 8, prompts=[MATH] * 8, log_metric=metrics.__setitem__) == [0.5] * 8
    assert asked == [] and metrics["pairwise_judge/judged"] == 0.0 and reward.fn.judged == 0


@pytest.mark.parametrize("params, message", [
    ({"against": "answers"}, "against must be group or reference"),
    ({"checker": "rubric_judge"}, "checker must be one of math_accuracy, exact_match"),
])
def test_pairwise_judge_names_a_bad_setting(params, message):
    with pytest.raises(UserError, match=message):
        resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", **params})


def test_judgements_without_a_verdict_are_finished_by_the_judge_and_counted(monkeypatch):
    # No VERDICT line: the judgement is redone, guided (here "A" in both orders: position bias, a tie)
    reward, _ = scripted(monkeypatch, lambda prompt: "46 (12+34)")
    metrics = {}
    assert reward(["46", "45"], prompts=[MATH] * 2, log_metric=metrics.__setitem__) == [0.5, 0.5]
    assert metrics["pairwise_judge/unparsed"] == 1.0 and reward.fn.unparsed == reward.fn.judged == 2  # one pair, two orders
    copy = pickle.loads(pickle.dumps(reward))  # picklable like the rule rewards
    assert copy.fn.judge.judge == "tiny:qwen2-1m" and copy.fn.judge._model is None


def test_judge_verdict_rewards_the_side_people_chose():
    reward = resolve({"name": "judge_verdict"})
    assert reward.kind == "accuracy"
    assert reward(["...VERDICT: [[A]]", "VERDICT: [[A]]", "no verdict", "VERDICT: [[tie]]"],
                  answer=["A", "B", "A", "tie"]) == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("spec, message", [
    ({"name": "pairwise_judge"}, "needs parameter 'judge'"),
    ({"name": "pairwise_judge", "judge": "/nope/judge"}, "judge model or run directory not found"),
    ({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "opponents": 0}, "must be at least 1"),
    ({"name": "pairwise_jugde", "judge": "x"}, "did you mean 'pairwise_judge'"),
])
def test_recipe_mistakes_are_caught_when_the_recipe_is_read(spec, message):
    with pytest.raises(UserError, match=message):
        resolve(spec)


# ---------------------------------------------------------------- the training data, from the votes


def vote_store(path, n=10):
    with VoteStore(path) as store:
        for i in range(n):
            store.record(conversation=[{"role": "user", "content": f"{i}+1"}], response_a=str(i + 1),
                         response_b=str(i + 2), model_a="m1", model_b="m2", vote="a", annotator="ann")
    return path


def test_split_then_verdict_rows_hold_both_orders_and_no_held_out_vote(tmp_path):
    db = vote_store(tmp_path / "votes.sqlite")
    judging.main(["split", "--pairs", str(db), "--out", str(tmp_path / "pairs")])
    judging.main(["verdicts", "--pairs", str(tmp_path / "pairs" / "train.jsonl"), "--out", str(tmp_path / "v.jsonl")])
    rows = [json.loads(line) for line in open(tmp_path / "v.jsonl")]
    held_out = judging.read_pairs(tmp_path / "pairs" / "test.jsonl")
    assert len(rows) == 16 and len(held_out) == 2
    assert [r["verdict"] for r in rows[:2]] == ["A", "B"] and {r["judge_start"] for r in rows} == {""}  # asked inline
    assert shown(rows[0]["judge_prompt"])[::-1] == shown(rows[1]["judge_prompt"])
    trained = {r["judge_prompt"].split("Task: ")[1].split("\n")[0] for r in rows}
    assert trained.isdisjoint(task for task, _, _ in held_out)


def test_verdicts_from_a_judge_keep_both_orders_of_the_pairs_it_gets_wrong(tmp_path, monkeypatch, capsys):
    db = vote_store(tmp_path / "votes.sqlite", n=12)  # task "i+1": people chose i+1 over i+2

    def judge_that(habit):  # a double of the judge's greedy judgements, one habit per task
        def ask(self, chats, k=1, desc=None):
            out = []
            for chat in chats:
                task, a, b = re.search(r"Task: (\d+)\+1\nAnswer A: (\d+)\nAnswer B: (\d+)", chat[0]["content"]).groups()
                right = "A" if int(a) == int(task) + 1 else "B"
                verdict = {"right": right, "one position": "A", "wrong": "B" if right == "A" else "A"}[habit(int(task))]
                out.append([f"VERDICT: [[{verdict}]]"] * k)
            return out
        return ask

    habits = ["right", "one position", "wrong"]
    monkeypatch.setattr(pairwise.PairJudge, "ask", judge_that(lambda task: habits[task % 3]))
    judging.main(["verdicts", "--pairs", str(db), "--judge", "tiny:qwen2-1m", "--out", str(tmp_path / "v.jsonl")])
    rows = [json.loads(line) for line in open(tmp_path / "v.jsonl")]
    tasks = [int(r["judge_prompt"].split("Task: ")[1].split("+")[0]) for r in rows]
    assert sorted(set(tasks)) == [i for i in range(12) if i % 3]  # the pairs it names one side of, or wrongly
    assert [r["verdict"] for r in rows] == ["A", "B"] * 8  # each in both orders: either position as often right
    assert "both orders of 8 voted pairs the judge gets wrong, of 12" in capsys.readouterr().out

    monkeypatch.setattr(pairwise.PairJudge, "ask", judge_that(lambda task: "right"))
    with pytest.raises(SystemExit) as exit:
        judging.main(["verdicts", "--pairs", str(db), "--judge", "tiny:qwen2-1m", "--out", str(tmp_path / "all.jsonl")])
    assert exit.value.code == 2 and "already agrees with every vote" in capsys.readouterr().err
    assert not (tmp_path / "all.jsonl").exists()


def matching(solution, a, b):
    """The verdict of a judge that backs the answer its solution matches, and ties where that is neither or both."""
    return "A" if a == solution != b else "B" if b == solution != a else "tie"


def evaluating_against_its_solution(self, texts, k=1, desc=None):
    """A double of PairJudge.ask_after for a solve-first judge: its EVALUATION and VERDICT, from the SOLUTION
    its reply opened with."""
    out = []
    for text in texts:
        a, b = re.search(r"Answer A: (.*)\nAnswer B: (.*?)<", text).groups()
        out.append([f" checked.\nVERDICT: [[{matching(re.findall(r'SOLUTION: (.*)', text)[-1], a, b)}]]"] * k)
    return out


def test_solve_first_verdicts_open_each_reply_with_the_judge_s_own_solution(tmp_path, monkeypatch, capsys):
    """`verdicts --solve-first`: the pairs a solve-first judge gets wrong, each prompt's reply opened with that
    judge's own solution of its task (what GRPO's reward asks it to continue), each task solved once."""
    db = vote_store(tmp_path / "votes.sqlite", n=6)  # task "i+1": people chose i+1 over i+2
    solved = []

    def ask(self, chats, k=1, max_new_tokens=None, desc=None):  # the task alone: wrong on even tasks
        tasks = [int(re.search(r"Task: (\d+)\+1", chat[0]["content"]).group(1)) for chat in chats]
        solved.extend(tasks)
        return [[f"TYPE: reasoning\nSOLUTION: {i + 2 if i % 2 == 0 else i + 1}"] * k for i in tasks]

    monkeypatch.setattr(pairwise.PairJudge, "ask", ask)
    monkeypatch.setattr(pairwise.PairJudge, "ask_after", evaluating_against_its_solution)
    judging.main(["verdicts", "--pairs", str(db), "--judge", "tiny:qwen2-1m", "--solve-first",
                  "--out", str(tmp_path / "v.jsonl")])
    rows = [json.loads(line) for line in open(tmp_path / "v.jsonl")]
    tasks = [int(r["judge_prompt"].split("Task: ")[1].split("+")[0]) for r in rows]
    assert tasks == [0, 0, 2, 2, 4, 4] and [r["verdict"] for r in rows] == ["A", "B"] * 3
    opened = [f"TYPE: reasoning\nSOLUTION: {i + 2}\nEVALUATION:" for i in (0, 2, 4)]  # its wrong solutions
    assert [r["judge_start"] for r in rows[::2]] == opened
    assert sorted(solved) == list(range(6))  # once per task, for judging both orders and for the rows


def test_traces_keep_only_judgements_that_agree_with_the_vote(tmp_path, monkeypatch):
    db = vote_store(tmp_path / "votes.sqlite")
    samples = iter(["VERDICT: [[A]]", "VERDICT: [[B]]", "rambling"] * 100)
    monkeypatch.setattr(pairwise.PairJudge, "ask", lambda self, c, k=1, desc=None: [[next(samples) for _ in range(k)] for _ in c])
    monkeypatch.setattr(pairwise.PairJudge, "guided", lambda self, pairs, heads=None: ["VERDICT: [[tie]]"] * len(pairs))
    rows, stats = judging.traces(pairwise.PairJudge("tiny:qwen2-1m"), judging.read_pairs(db)[:8], k=3)
    assert stats == {"pairs": 8, "sampled": 48, "kept": 16, "unparsed": 16 / 48}
    for row in rows:
        prompt, verdict = row["judge_prompt"], pairwise.parse_verdict(row["judgement"])
        chosen = shown(prompt)[0 if verdict == "A" else 1]
        task = prompt.split("Task: ")[1].split("\n")[0]
        assert int(chosen) == int(task.split("+")[0]) + 1  # the voted winner, in either position


def test_traces_from_the_reference_check_each_final_number_and_keep_the_voted_side(tmp_path):
    rows = [
        {"prompt": "Ana has 3 apples and buys 4. How many now?", "chosen": "3 + 4 = 7. The answer is 7.",
         "rejected": "3 + 4 = 8. The answer is 8.", "reference": "3 + 4 = 7. The answer is 7."},
        {"prompt": "Ben has 9 cards and gives 2 away. How many now?", "chosen": "9 - 2 = 7. The answer is 7.",
         "rejected": "9 - 2 = 7", "reference": "9 - 2 = 7. The answer is 7."},  # both right: no verdict to teach
        {"prompt": "A jar holds 6 coins; 5 more go in. How many?", "chosen": "6 + 5 = 12",
         "rejected": "6 + 5 = 11", "reference": "6 + 5 = 11. The answer is 11."},  # a vote against the solution
    ]
    pairs = tmp_path / "train.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    judging.main(["traces", "--from-reference", "--pairs", str(pairs), "--out", str(tmp_path / "t.jsonl")])
    traces = [json.loads(line) for line in open(tmp_path / "t.jsonl")]
    traces, solves = traces[:2], traces[2:]  # the first pair, in both orders; then each task solved alone
    assert [row["judgement"] for row in solves] == [f"TYPE: reasoning\nSOLUTION: {row['reference']}" for row in rows]
    assert [pairwise.parse_head(row["judgement"]) for row in solves] == [("reasoning", row["reference"]) for row in rows]
    assert all(row["judge_prompt"].endswith(f"Task: {pair['prompt']}") and "Answer A" not in row["judge_prompt"]
               for row, pair in zip(solves, rows))
    for trace, (a, b), verdict in zip(traces, [("7", "8"), ("8", "7")], ["A", "B"]):
        assert shown(trace["judge_prompt"])[0].endswith(f"{a}.") and shown(trace["judge_prompt"])[1].endswith(f"{b}.")
        assert trace["judgement"].startswith("TYPE: reasoning\nSOLUTION: 3 + 4 = 7. The answer is 7.\n")
        checks = {"7": "right, so {side}", "8": "wrong"}
        assert (f"A ends in {a}, {checks[a].format(side='A')}; B ends in {b}, {checks[b].format(side='B')}."
                in trace["judgement"])
        assert pairwise.parse_verdict(trace["judgement"]) == verdict


@pytest.mark.parametrize("args, message", [
    (["traces", "--from-reference", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/v.jsonl"], "pair 1 has no reference"),
    (["traces", "--from-reference", "--judge", "x", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/v.jsonl"],
     "not allowed with argument"),
    (["verdicts", "--pairs", "{tmp}/missing.sqlite", "--out", "{tmp}/v.jsonl"], "not found"),
    (["verdicts", "--pairs", "{tmp}/votes.sqlite", "--solve-first", "--out", "{tmp}/v.jsonl"],
     "name the judge with --judge"),
    (["verdicts", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/votes.sqlite"], "the file being read"),
    (["split", "--pairs", "{tmp}/votes.sqlite", "--held-out", "1", "--out", "{tmp}/v"], "--held-out"),
    (["split", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/notes.jsonl"], "is a file"),
    (["split", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/notes.jsonl/v"], "{tmp}/notes.jsonl is a file, not a"),
    (["verdicts", "--pairs", "{tmp}/votes.sqlite", "--out", "{tmp}/notes.jsonl/a/v.jsonl"], "notes.jsonl is a file"),
    (["verdicts", "--pairs", "{tmp}/latin.jsonl", "--out", "{tmp}/v.jsonl"], "--pairs: {tmp}/latin.jsonl is not UTF-8"),
    (["verdicts", "--pairs", "{tmp}/notes.jsonl", "--out", "{tmp}/v.jsonl"], "line 1 is not a pair"),
    (["verdicts", "--pairs", "{tmp}/broken.jsonl", "--out", "{tmp}/v.jsonl"], "line 2 is not a pair"),
    (["verdicts", "--pairs", "{tmp}/empty.jsonl", "--out", "{tmp}/v.jsonl"], "holds no pairs"),
    (["traces", "--judge", "x", "--pairs", "{tmp}/votes.sqlite", "--k", "0", "--out", "{tmp}/t.jsonl"], "--k"),
    (["eval", "--judge", "{tmp}/nope", "--pairs", "{tmp}/votes.sqlite"], "--judge {tmp}/nope not found"),
    (["eval", "--judge", "tiny:qwen2-1m", "--pairs", "{tmp}/votes.sqlite", "--rm", "{tmp}"], "is not a reward-model run"),
])
def test_bad_arguments_get_one_line_and_change_nothing(tmp_path, capsys, args, message):
    db = vote_store(tmp_path / "votes.sqlite")
    (tmp_path / "notes.jsonl").write_text('{"text": "a note"}\n')
    (tmp_path / "broken.jsonl").write_text('{"prompt": "1+1", "chosen": "2", "rejected": "3"}\n{"prompt": \n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "latin.jsonl").write_bytes('{"prompt": "caf\xe9?", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    before = db.read_bytes()
    with pytest.raises(SystemExit) as exit:
        judging.main([a.format(tmp=tmp_path) for a in args])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert db.read_bytes() == before and not (tmp_path / "v.jsonl").exists()


def copying_judge(monkeypatch):
    """A double of the defect solve-first fixes: shown the answers, its SOLUTION copies answer A; asked the
    task alone, it solves it. Its EVALUATION then backs whichever answer matches its solution."""
    solve_asks = []

    def ask(self, conversations, k=1, max_new_tokens=None, desc=None):
        replies = []
        for chat in conversations:
            prompt = chat[-1]["content"]
            if "Answer A:" not in prompt:  # the task alone
                solve_asks.append(prompt)
                x, y = map(int, re.search(r"(\d+)\+(\d+)", prompt).groups())
                replies.append([f"TYPE: reasoning\nSOLUTION: {x + y}"] * k)
            else:
                a, b = shown(prompt)
                replies.append([f"TYPE: reasoning\nSOLUTION: {a}\nEVALUATION: ...\nVERDICT: [[{matching(a, a, b)}]]"] * k)
        return replies

    monkeypatch.setattr(pairwise.PairJudge, "ask", ask)
    monkeypatch.setattr(pairwise.PairJudge, "ask_after", evaluating_against_its_solution)
    return solve_asks


def test_solving_first_keeps_the_answers_from_steering_the_judges_solution(monkeypatch):
    solve_asks = copying_judge(monkeypatch)
    answers, prompts = ["46", "45", "47", "44"], [MATH] * 4
    inline, metrics = {}, {}
    scores = resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "checker": "math_accuracy", "solve_first": False})(
        answers, prompts=prompts, answer=["46"] * 4, log_metric=inline.__setitem__)
    assert inline["pairwise_judge/position_bias"] == 1.0  # answer A wins every pair, whichever it is
    assert scores == pytest.approx([0.5] * 4)  # the right answer gains nothing
    first = resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "checker": "math_accuracy"})  # the default
    scores = first(answers, prompts=prompts, answer=["46"] * 4, log_metric=metrics.__setitem__)
    assert len(solve_asks) == 1 and "Answer" not in solve_asks[0]  # once per task, before any answer is read
    assert scores[0] == 1.0 and max(scores[1:]) < 0.5  # the right answer wins every game it is in
    assert metrics["pairwise_judge/position_bias"] == 0.0 and metrics["pairwise_judge/checker_agreement"] == 1.0


def test_one_order_halves_the_judgements_and_alternates_the_positions(monkeypatch):
    copying_judge(monkeypatch)
    asked = []
    real = pairwise.PairJudge.ask_after
    monkeypatch.setattr(pairwise.PairJudge, "ask_after", lambda self, texts, k=1, desc=None: asked.extend(texts) or real(self, texts, k))
    metrics = {}
    reward = resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "solve_first": True, "orders": 1})
    scores = reward(["46", "45", "47", "44"], prompts=[MATH] * 4, log_metric=metrics.__setitem__)
    assert len(asked) == 6  # the ring's 6 distinct pairs (2 opponents in a group of 4), each once, not twice
    firsts = [re.search(r"Answer A: (\d+)", text).group(1) for text in asked]
    answers, ring = ["46", "45", "47", "44"], [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3)]
    assert firsts == [answers[x] if i % 2 == 0 else answers[y] for i, (x, y) in enumerate(ring)]  # every other swapped
    assert scores[0] == 1.0 and max(scores[1:]) < 0.5
    assert "pairwise_judge/position_bias" not in metrics  # one order cannot show it


def test_a_solve_reply_is_read_up_to_the_next_heading():
    assert pairwise.parse_head("TYPE: reasoning\nSOLUTION: 37 + 84 = 121\nSOLUTION: again\nTYPE:") == ("reasoning", "37 + 84 = 121")
    assert pairwise.parse_head("TYPE: chat\nSOLUTION: 1. clear\n2. short\nEVALUATION: x") == ("chat", "1. clear\n2. short")
    assert pairwise.parse_head("TYPE: chat\nSOLUTION: ") is None and pairwise.parse_head("121") is None


def test_pairwise_judge_refuses_an_order_count_but_one_or_two():
    with pytest.raises(UserError, match="orders must be 1 or 2"):
        resolve({"name": "pairwise_judge", "judge": "tiny:qwen2-1m", "orders": 3})
