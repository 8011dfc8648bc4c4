"""Reward models from votes: the oracle's votes -> python -m tinyalign.rm -> a GRPO reward -> the loop."""

import json
import pickle
import random
import re

import pytest
import yaml

from tinyalign import dpo, loop, rm, sft
from tinyalign.config import recipe as recipes
from tinyalign.config.recipe import builtin
from tinyalign.core.errors import UserError
from tinyalign.data import loading as data
from tinyalign.experiments import annotators
from tinyalign.measure import reward_model as rm_measure
from tinyalign.models import reward_model as rm_load
from tinyalign.rewards import implicit, pairwise, pairwise_reward, resolve

RECIPE = str(builtin("tiny_rm.yaml"))


# ---------------------------------------------------------------- the simulated annotator


@pytest.mark.parametrize("answer, expected", [("46", 2), (" 46 ", 2), ("46)", 1), ("46 (12+34)", 1),
                                              ("461", 0), ("47", 0), ("", 0), ("4 6", 0)])
def test_oracle_grades_right_answers_in_the_asked_style_highest(answer, expected):
    assert annotators.grade(answer, "46") == expected


@pytest.mark.parametrize("answer, expected", [("72", 2), ("72.", 2), (" 72\n", 2), ("45 + 27 = 72", 1),
                                              ("The sum of 45 and 27 is 72.", 1), ("72 is 45 + 27", 0),
                                              ("45 + 27 = 712", 0), ("To add 45 and 27, we", 0), ("", 0)])
def test_a_chat_models_sum_is_graded_by_its_last_number_and_the_bare_number_highest(answer, expected):
    assert annotators.grade_reply(answer, "72") == expected


def test_oracle_votes_like_an_annotator():
    assert annotators.oracle("46", "46)", "46") == ("a", None)
    assert annotators.oracle("47", "46 (12+34)", "46") == ("b", None)
    assert annotators.oracle("46", "46", "46") == ("tie", None)
    assert annotators.oracle("47", "45", "46") == ("both_bad", "46")  # both wrong: the right answer as an edit


# ---------------------------------------------------------------- training and measuring


@pytest.fixture(scope="module")
def start_run(tmp_path_factory):
    """The loop's starting policy (tiny_sft_mixed.yaml): trained to convergence on 70 % wordy answers, it
    answers wordily when greedy (exact match 0 %) and in both styles, with a few wrong sums, when sampled.
    Its rates come from the data's mix, so they hold on any CPU; a short run stopped part-way (tiny_sft.yaml
    with a cosine decay) gave 35 % on one machine and 71 % on another, and the votes over it with them."""
    out = tmp_path_factory.mktemp("runs") / "start_sft"
    sft.main([str(builtin("tiny_sft_mixed.yaml")), f"output_dir={out}"])
    return out


@pytest.fixture(scope="module")
def votes(start_run, tmp_path_factory):
    """The starting policy's answers to 1500 training prompts, voted by the oracle into a vote store."""
    db = tmp_path_factory.mktemp("votes") / "prefs.sqlite"
    done = annotators.annotate(db, {"sft": str(start_run)}, prompts=1500)
    assert done["votes"] == 1500
    return db


def test_the_loop_closes_with_each_gain_its_interval_and_the_learned_share(capsys):
    table = [{"round": 1, "votes": 600, "rm_accuracy": 0.925, "policy": "grpo_rm", "start_accuracy": 0.418,
              "policy_accuracy": 0.466, "gain_interval": [0.021, 0.075]},
             {"round": "rule", "policy": "grpo_rule", "start_accuracy": 0.418, "policy_accuracy": 0.572,
              "gain_interval": [0.117, 0.191]}]
    loop.print_table(table, "grpo")
    printed = capsys.readouterr().out
    assert "| 1 | 600 | 92.5% | - | - | 41.8% | 46.6% | - |" in printed
    assert ("GRPO on the learned reward alone: +4.8 points (95 % interval +2.1 to +7.5); 0.31 of the rule's gain\n"
            "GRPO on the rule: +15.4 points (95 % interval +11.7 to +19.1)") in printed


def test_the_base_model_can_be_the_policy_voted_on(tmp_path):
    """A loop may start from the base (no SFT run): its answers go through the same vote store."""
    db = tmp_path / "prefs.sqlite"
    done = annotators.annotate(db, {"base": None}, prompts=40)
    assert done["votes"] == 40 and sum(done["by_vote"].values()) == 40
    from tinyalign.votes import VoteStore

    with VoteStore(db) as store:
        assert {(row["model_a"], row["model_b"]) for row in store.votes()} == {("base", "base")}


def test_loop_votes_names_a_bad_store_before_it_generates_an_answer(tmp_path, capsys, monkeypatch):
    from tinyalign.models import generate

    monkeypatch.setattr(generate, "generate", lambda *a, **k: pytest.fail("answers generated for a store it refuses"))
    notes = tmp_path / "notes.sqlite"
    notes.write_text("not a database")
    for db, says in [(notes, "is not an SQLite database"), (tmp_path, "is a folder"),
                     (notes / "votes.sqlite", "notes.sqlite is a file, not a folder")]:
        with pytest.raises(SystemExit) as exit_:
            loop.main(["votes", "--policy", "base=", "--db", str(db), "--prompts", "4"])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    assert notes.read_text() == "not a database"


def test_loop_votes_on_the_real_task_votes_its_sums_by_its_rule(tmp_path, capsys, monkeypatch):
    """`loop votes --task smollm2-sums` is round 1 of the sums loop on its own: SmolLM2 answers the task's
    sums under its system prompt, and the votes are the task's rule's (a bare number), not the tiny task's."""
    from tinyalign.votes import VoteStore

    rules = []  # the base model's answers to four sums rarely tell the two rules apart: ask which one voted
    annotate = loop.annotate
    monkeypatch.setattr(loop, "annotate", lambda *args: rules.append(args[-1]) or annotate(*args))
    db = tmp_path / "sums.sqlite"
    loop.main(["votes", "--task", "smollm2-sums", "--policy", "base=", "--db", str(db), "--prompts", "4"])
    assert "recorded 4 votes" in capsys.readouterr().out
    assert rules == [annotators.grade_reply]
    with VoteStore(db) as store:
        votes = store.votes()
    assert len(votes) == 4
    for vote in votes:
        system, question = vote["conversation"]
        assert system == {"role": "system", "content": "Reply with the number only."}
        a, b = map(int, re.fullmatch(r"What is (\d+)\+(\d+)\?", question["content"]).groups())
        expected, _ = annotators.oracle(vote["response_a"], vote["response_b"], str(a + b), annotators.grade_reply)
        assert vote["vote"] == expected


@pytest.fixture(scope="module")
def rm_run(votes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rm"
    rm.main([RECIPE, f"data.source={votes}", "data.test_size=0.25", f"output_dir={out}"])
    return out


@pytest.mark.slow
def test_reward_model_from_votes_ranks_held_out_pairs(rm_run, votes, capsys):
    metrics = json.loads((rm_run / rm_load.METRICS).read_text())
    # Pairs that differ in form ("68" vs "68 (23+45)") it gets right every time; a right wordy answer against a
    # wrong bare one needs it to redo the sum, which this 0.8M classifier does less reliably than it learns the
    # style. 78 %: the minimum measured over bench/studies/rm_spread.py's seeds and machines less five points
    # (bench/RESULTS.md, "The tiny reward model over seeds").
    assert metrics["accuracy"] >= 0.78, metrics
    assert metrics["mean_margin"] > 0.5
    # no length bias beyond what the votes hold, measured on the held-out pairs whose answers differ in length
    # (bias -4 to -8 % over the five seeds: people chose the shorter, bare answer);
    # with too few such pairs it would not be measured at all (None), which must not pass as "no bias"
    assert metrics["length_pairs"] >= 20 and abs(metrics["length_bias"]) <= 0.25, metrics
    # the run directory contract: recipe, log, checkpoints, the adapter with its trained head
    assert (rm_run / "recipe.yaml").is_file() and list(rm_run.glob("checkpoint-*"))
    log = json.loads((rm_run / "trainer_state.json").read_text())["log_history"]
    accuracy = [e["accuracy"] for e in log if "accuracy" in e]
    assert accuracy[-1] > accuracy[0]
    assert "score" in json.loads((rm_run / "adapter_config.json").read_text())["modules_to_save"]

    # reloaded from disk, it prefers the right answer as asked ("68") to the same answer worded
    # ("68 (23+45)") on sums it never saw: the style pairs, 774 of 774 right in bench/RESULTS.md. Whether
    # "68" beats a wrong "58" is the sum check it gets ~60 % of the time: one example cannot assert that
    # (a single such pair flipped between two CPUs).
    scorer, tokenizer = rm_load.load_for_scoring(rm_run)
    rng = random.Random(0)
    sums = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(100)]
    prompts = [[{"role": "user", "content": f"{a}+{b}"}] for a, b in sums]
    bare = rm_measure.rm_scores(scorer, tokenizer, prompts, [str(a + b) for a, b in sums])
    worded = rm_measure.rm_scores(scorer, tokenizer, prompts, [f"{a + b} ({a}+{b})" for a, b in sums])
    assert sum(b > w for b, w in zip(bare, worded)) >= 95

    # a second run into the same folder is refused, and names the fix
    with pytest.raises(SystemExit) as stop:
        rm.main([RECIPE, f"data.source={votes}", f"output_dir={rm_run}"])
    assert stop.value.code == 2
    assert "overwrite=true" in capsys.readouterr().err


@pytest.mark.slow
def test_dpo_on_the_same_votes_is_a_reward_that_checks_the_sum(start_run, votes, rm_run, tmp_path, capsys):
    """The reward read from a language model, where the scalar head stalls: DPO continues the voted policy
    on the reward model's pairs, held out the same way, and `python -m tinyalign.dpo` measures its reward."""
    run = tmp_path / "dpo"
    dpo.main([str(builtin("tiny_dpo.yaml")), "model.quantization=none", f"model.adapter={start_run}",
              f"data.source={votes}", "data.test_split=null", "data.test_size=0.25", "data.limit=null",
              "data.prompt=null", "data.chosen=null", "data.rejected=null", f"output_dir={run}"])
    metrics = json.loads((run / implicit.METRICS).read_text())
    assert metrics["pairs"] == json.loads((rm_run / rm_load.METRICS).read_text())["pairs"]  # the RM's held-out votes
    assert f"held-out: the implicit reward sides with {metrics['accuracy']:.1%}" in capsys.readouterr().out
    # Floors: each minimum measured over bench/studies/rm_spread.py --dpo's five seeds less ~5 (the likelihood's: 90 %,
    # the goal for a learned reward here); bench/RESULTS.md, "DPO on the same votes".
    assert metrics["accuracy"] >= 0.86, metrics
    assert metrics["likelihood_accuracy"] >= 0.90, metrics

    # Why the likelihood holds: on sums no vote ever compared, the log-ratio knows the asked style only
    # (what the votes changed) and the likelihood also the sum (what the start knew): a right bare sum over
    # one off by ten, measured 54.5 % and 100 % for seed 0
    rng = random.Random(0)
    sums = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(200)]
    prompts = [[{"role": "user", "content": f"{a}+{b}"}] for a, b in sums]
    right, slip = [str(a + b) for a, b in sums], [str(a + b + rng.choice([-10, 10])) for a, b in sums]
    likelihood = resolve({"name": "implicit_reward", "model": str(run), "reference": "none"})
    assert sum(r > w for r, w in zip(likelihood(right, prompts=prompts), likelihood(slip, prompts=prompts))) >= 180
    worded = [f"{a + b} ({a}+{b})" for a, b in sums]
    log_ratio = resolve({"name": "implicit_reward", "model": str(run)})
    assert all(r > w for r, w in zip(log_ratio(right, prompts=prompts), log_ratio(worded, prompts=prompts)))


def test_mismatched_pairs_reject_another_question_s_answer_under_each_question():
    from datasets import Dataset

    from tinyalign.measure.pair_files import with_mismatched_answers

    def turn(role, text):
        return [{"role": role, "content": text}]

    votes = [{"prompt": turn("user", f"{a}+{b}"), "chosen": turn("assistant", str(a + b)),
              "rejected": turn("assistant", str(a + b + 10))} for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 1)]]
    votes.append({**votes[1], "rejected": turn("assistant", "seven")})  # a second vote on one prompt
    pairs = with_mismatched_answers(Dataset.from_list(votes), seed=0).to_list()
    assert pairs[:len(votes)] == votes  # every vote still there, as it was
    added = pairs[len(votes):]
    right = {v["prompt"][0]["content"]: v["chosen"] for v in votes}
    assert added and len(added) <= len(right)  # at most one per question
    for pair in added:
        question = pair["prompt"][0]["content"]
        assert pair["chosen"] == right[question]  # the question's own right answer ...
        # ... over another's, never one equal to its own ("1+2" and "2+1" share theirs)
        assert pair["rejected"] in right.values() and pair["rejected"] != pair["chosen"]


@pytest.mark.slow
def test_an_rm_trains_on_its_votes_and_one_mismatched_pair_a_question_measured_on_the_votes_alone(votes, tmp_path,
                                                                                                 capsys):
    """The product path of data.mismatched_pairs: one epoch each (max_steps=null over the recipe's 150), so
    the steps count the pairs trained on; the held-out pairs are the same votes either way."""
    runs = {}
    for name, extra in (("votes", []), ("mismatched", ["data.mismatched_pairs=true"])):
        out = tmp_path / name
        rm.main([RECIPE, f"data.source={votes}", "data.test_size=0.25", "train.max_steps=null",
                 "train.num_train_epochs=1", *extra, f"output_dir={out}"])
        runs[name] = (json.loads((out / "trainer_state.json").read_text())["max_steps"],
                      json.loads((out / rm_load.METRICS).read_text())["pairs"])
    (steps, held_out), (more_steps, same_held_out) = runs["votes"], runs["mismatched"]
    assert same_held_out == held_out
    assert 1.3 * steps <= more_steps <= 2.1 * steps  # up to one more pair per training question
    assert "mismatched ones (data.mismatched_pairs)" in capsys.readouterr().out  # said once, before training


@pytest.mark.slow
def test_rm_refuses_a_policy_adapter_as_its_start(start_run, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"1+{i}", "chosen": str(1 + i), "rejected": "0"}) + "\n"
                             for i in range(20)))
    with pytest.raises(SystemExit):
        rm.main([RECIPE, f"data.source={pairs}", f"model.adapter={start_run}", f"output_dir={tmp_path / 'rm'}"])
    assert "not a reward model" in capsys.readouterr().err
    assert not (tmp_path / "rm").exists()


@pytest.mark.slow
def test_a_reward_model_starts_from_the_policy_it_judges_and_reloads_with_it(start_run, votes, tmp_path):
    out = tmp_path / "rm_from_policy"
    rm.main([RECIPE, f"data.source={votes}", "data.test_size=0.25", f"model.policy={start_run}", f"output_dir={out}"])
    metrics = json.loads((out / rm_load.METRICS).read_text())
    # reloaded from disk, the policy is merged in again under the reward model's adapter: it scores the
    # held-out pairs as it did at the end of training (without the policy the scores would be another model's)
    recipe = rm.resolve(recipes.load(out / "recipe.yaml"))
    assert recipe.model.policy == str(start_run)
    _, test = data.load(recipe.data, "rm", recipe.seed)
    scorer, tokenizer = rm_load.load_for_scoring(out)
    again = rm_measure.measure(scorer, tokenizer, test)
    assert again["pairs"] == metrics["pairs"] and again["accuracy"] == metrics["accuracy"]
    assert again["mean_margin"] == pytest.approx(metrics["mean_margin"], abs=1e-4)


@pytest.mark.slow
def test_an_rm_at_chance_is_named_when_its_run_ends(tmp_path, capsys):
    # answers that differ in nothing: no reward model can rank them, whatever it learned
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"{i}+1", "chosen": str(i + 1), "rejected": str(i + 1)}) + "\n"
                             for i in range(40)))
    rm.main([RECIPE, f"data.source={pairs}", "data.test_size=10", "train.max_steps=3", f"output_dir={tmp_path / 'rm'}"])
    err = capsys.readouterr().err
    # the verdict comes after the held-out pairs are scored, so it reads them
    assert "doctor: rm_at_chance" in err and "doctor: 1 finding(s): rm_at_chance" in err, err
    assert "no symptoms" not in err


@pytest.mark.slow
def test_a_reward_model_per_dimension_trains_on_that_dimension_s_verdicts(tmp_path, capsys):
    # The overall vote says A; on correctness the annotators sided with B (the right sum, worded badly).
    from tinyalign.prefs import VoteStore

    db = tmp_path / "votes.sqlite"
    with VoteStore(db) as store:
        for i in range(24):
            store.record(conversation=[{"role": "user", "content": f"{i}+1"}], response_a=str(i), response_b=f"= {i + 1}",
                         model_a="m1", model_b="m2", vote="a", annotator="ann",
                         dimensions={"correctness": "b"} if i % 4 else {"style": "a"})
    rm.main([RECIPE, f"data.source={db}", "data.dimension=correctness", "data.test_size=4", "train.max_steps=2",
             f"output_dir={tmp_path / 'rm'}"])
    metrics = json.loads((tmp_path / "rm" / rm_load.METRICS).read_text())
    assert metrics["pairs"] == 4  # 18 judged correctness, 4 of them held out
    from tinyalign.config.recipe import Data
    from tinyalign.data import loading as data

    rows = data.load_split(Data(source=str(db), dimension="correctness"), "train")
    assert len(rows) == 18 and all(r["chosen"][0]["content"].startswith("= ") for r in rows)

    with pytest.raises(SystemExit):  # a dimension no vote judged: one line, no run directory
        rm.main([RECIPE, f"data.source={db}", "data.dimension=helpfulness", f"output_dir={tmp_path / 'rm2'}"])
    assert "no vote judged the dimension 'helpfulness'" in capsys.readouterr().err
    assert not (tmp_path / "rm2").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "1+1", "chosen": "2", "rejected": "3"}) + "\n")
    with pytest.raises(SystemExit):
        rm.main([RECIPE, f"data.source={pairs}", "data.dimension=correctness", f"output_dir={tmp_path / 'rm3'}"])
    assert "data.dimension picks a dimension of a vote store" in capsys.readouterr().err


# ---------------------------------------------------------------- as a GRPO reward


@pytest.mark.slow
def test_reward_model_reward_names_what_is_wrong(start_run, tmp_path):
    with pytest.raises(UserError, match="run directory not found"):
        resolve({"name": "reward_model", "model": str(tmp_path / "nowhere")})
    with pytest.raises(UserError, match="not a finished reward-model run"):
        resolve({"name": "reward_model", "model": str(start_run)})
    with pytest.raises(UserError, match="quantization"):
        resolve({"name": "reward_model", "model": str(start_run), "quantization": "3bit"})


@pytest.mark.slow
def test_reward_model_reward_is_normalised_and_picklable(rm_run):
    reward = resolve({"name": "reward_model", "model": str(rm_run), "weight": 1.0})
    reward = pickle.loads(pickle.dumps(reward))  # as DDP / dataloader workers would receive it
    prompts = [[{"role": "user", "content": q}] for q in ("23+45", "23+45", "9+9", "9+9")]
    completions = [[{"role": "assistant", "content": a}] for a in ("68", "6868)", "18", "18 (9+9)")]
    logged = {}
    scores = reward(completions, prompts=prompts, log_extra=logged.__setitem__,
                    log_metric=logged.__setitem__)
    assert scores[0] > scores[1] and scores[2] > scores[3]
    stats = json.loads((rm_run / rm_load.METRICS).read_text())
    raw = logged["reward_model_raw"]
    assert scores == pytest.approx([(r - stats["score_mean"]) / stats["score_std"] for r in raw])
    assert logged["reward_model/raw_mean"] == pytest.approx(sum(raw) / 4)


@pytest.mark.parametrize("name", list(loop.TASKS))
def test_each_loop_task_s_recipes_take_the_overrides_the_loop_gives_them(name, tmp_path):
    """A wrong key in a task's overrides would surface only after its first round's votes and RM."""
    task = loop.TASKS[name]
    rm_recipe = recipes.load(task.rm, {**task.rm_settings, "data.source": tmp_path, "data.split": "train"}, method="rm")
    policy = recipes.load(task.grpo, {**task.learned_reward_settings,
                                      "rewards": [{"name": "reward_model", "model": tmp_path}]}, method="grpo")
    prompts = recipes.load(task.prompts)
    filter_sft = recipes.load(task.sft, loop.filter_sft_settings(task, tmp_path / "picks.jsonl"), method="sft")
    second = recipes.load(task.dpo, {**task.dpo_settings, "data.source": tmp_path, "data.split": "train",
                                     "data.test_split": "test", "model.adapter": None}, method="dpo")  # --with-dpo
    assert rm_recipe.model.name == policy.model.name == prompts.model.name == filter_sft.model.name == second.model.name
    # the picks were sampled under the policy's prompt, and are trained under it
    assert (filter_sft.data.prompt, filter_sft.data.system) == (policy.data.prompt, policy.data.system)
    halved = loop.half_the_steps(rm_recipe.train)
    assert set(halved) <= {"train.max_steps", "train.num_train_epochs"}
    recipes.load(task.rm, {**task.rm_settings, **halved}, method="rm")  # round 2's settings load too


@pytest.mark.parametrize("policy_step", ["grpo", "dpo"])
def test_the_loop_refuses_dpo_beside_grpo_before_it_writes_anything(tmp_path, policy_step):
    with pytest.raises(UserError, match="--with-dpo ranks the filter's answers"):
        loop.run_loop(None, tmp_path / "loop", with_dpo=True, policy_step=policy_step)
    assert not (tmp_path / "loop").exists()


@pytest.mark.slow
def test_policy_and_reward_model_improve_together(start_run, tmp_path, capsys):
    table = loop.run_loop(str(start_run), tmp_path / "loop", grpo_steps=30, judge="tiny:qwen2-1m")
    first, rule, second = table
    assert first["votes"] == second["votes"] == 1000
    # Floors from seven loops on two machines (bench/RESULTS.md, "Reward model and policy together on the tiny
    # task"): RM round 1 at bench/studies/rm_spread.py's minimum less a margin, so an RM at chance fails it; 30 GRPO
    # steps end near the policy's flip from wordy to bare answers, which a CPU's float sums move by a few
    # steps, so the learned reward's share of the rule's gain (0.70-1.10 measured) is asked at 0.6.
    assert first["rm_accuracy"] >= 0.78, table
    # GRPO with no rule reward, only the learned one, gets most of what exact_match gets from the same start
    assert rule["policy_accuracy"] - rule["start_accuracy"] >= 0.15, table
    assert first["policy_accuracy"] - first["start_accuracy"] >= 0.6 * (rule["policy_accuracy"] - rule["start_accuracy"])
    # round 2's reward model, continued on votes over the new checkpoint's answers, is at least as accurate
    # there (0 to +1.9 points over round 1's, five loops; same section): three pairs of slack for CPUs not
    # measured; the floor is the minimum less five points
    assert second["rm_accuracy"] >= second["rm_r1_on_r2"] - 0.03, table
    assert second["rm_accuracy"] >= 0.83, table
    # the arena prefers the new checkpoint over its start
    assert second["arena_rating"]["grpo_rm"] > second["arena_rating"]["sft"]
    assert json.loads((tmp_path / "loop" / "loop.json").read_text()) == json.loads(json.dumps(table))
    # the untrained tiny judge is scored on the same held-out votes as the RM, each round (it does not
    # beat the RM: it names one position whatever the answers, see test_pairwise)
    assert all(0.0 <= row["judge_agreement"] < row["rm_accuracy"] for row in (first, second)), table
    printed = capsys.readouterr().out
    assert "| round | votes | rm_accuracy | rm_r1_on_r2 | judge_agreement |" in printed and "| 2 | 1000 |" in printed
    # each gain with its interval, paired over the same held-out questions: the learned reward's lies above 0
    low, high = first["gain_interval"]
    assert 0 < low <= first["policy_accuracy"] - first["start_accuracy"] <= high, table
    assert "GRPO on the learned reward alone: +" in printed and "(95 % interval +" in printed
    # the learned reward rose with exact match on the same completions: the doctor sees no hacking
    from tinyalign import doctor

    doctor.main([str(tmp_path / "loop" / "grpo-r1"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert "rm_hacked" not in {f["symptom"] for f in report["findings"]}
    rows = [json.loads(line) for line in open(tmp_path / "loop" / "grpo-r1" / "completions.jsonl")]
    assert "answer" in rows[0] and "reward_model_raw" in rows[0]


@pytest.mark.slow
@pytest.mark.parametrize("with_dpo", [False, True], ids=["rm", "rm_and_dpo"])
def test_the_loop_s_filter_step_sft_on_the_learned_reward_s_best_of_8(start_run, tmp_path, capsys, monkeypatch,
                                                                     with_dpo):
    """--policy-step filter: the RM picks the best of 8 of the start's answers, one epoch of SFT on them;
    --with-dpo: a DPO run on the same votes ranks them beside the RM."""
    from tinyalign.models import generate

    draws = []  # the start's answers are sampled once and scored under both rewards
    real_generate = generate.generate
    monkeypatch.setattr(generate, "generate", lambda *a, desc=None, **kw: draws.append(desc) or real_generate(*a, desc=desc, **kw))
    table = loop.run_loop(str(start_run), tmp_path / "loop", policy_step="filter", with_dpo=with_dpo)
    assert draws.count("sampling 8 per prompt") == 1, draws
    first, rule, second = table
    picks = [json.loads(line) for line in open(tmp_path / "loop" / "filter-r1-picks.jsonl")]
    rule_picks = [json.loads(line) for line in open(tmp_path / "loop" / "filter-rule-picks.jsonl")]
    # every prompt keeps the learned reward's best answer (it has no top score), or with DPO's likelihood beside
    # it the surest half of them; the rule keeps right ones only
    prompts = loop.TASKS["tiny"].filter_prompts
    assert 0.95 * prompts * (loop.SUREST if with_dpo else 1) <= len(picks) <= prompts * (loop.SUREST if with_dpo else 1)
    assert all(row["completion"] == row["answer"] for row in rule_picks)
    if with_dpo:  # round 1's DPO run, measured on the RM's held-out votes
        metrics = json.loads((tmp_path / "loop" / "dpo-r1" / implicit.METRICS).read_text())
        assert metrics["pairs"] == json.loads((tmp_path / "loop" / "rm-r1" / rm_load.METRICS).read_text())["pairs"]
        assert first["dpo_likelihood_accuracy"] == metrics["likelihood_accuracy"] >= 0.90, table
        assert all(row["reward"] > 0 for row in picks)  # standard units: the surest half beat the average answer
    # the start answers wordily when greedy (0 % exact); SFT on the RM's picks teaches the bare answer: 0.96-0.99
    # of the rule's gain measured over six loops (bench/RESULTS.md, "Reward model and policy together on the
    # tiny task"), asked at 0.8
    learned = first["policy_accuracy"] - first["start_accuracy"]
    ruled = rule["policy_accuracy"] - rule["start_accuracy"]
    assert first["policy"] == "filter_rm" and ruled >= 0.5 and learned >= 0.8 * ruled, table
    assert second["arena_rating"]["filter_rm"] > second["arena_rating"]["sft"]
    printed = capsys.readouterr().out
    assert "kept the best of 8 answers for " in printed and "train on it with" not in printed
    assert "best-of-8 then SFT on the learned reward alone: +" in printed
    assert ("the surest 50% of them: " in printed) == with_dpo


def test_doctor_names_an_rm_at_chance_that_tracks_length(tmp_path, capsys):
    from tinyalign import doctor

    run = tmp_path / "rm"
    run.mkdir()
    (run / "recipe.yaml").write_text("method: rm\ntrain: {learning_rate: 1.0e-4}\n")
    margins = [0.8, 0.9, 1.0, 1.0, 0.9, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1]
    (run / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 10 * (i + 1), "loss": 0.69, "accuracy": 0.5, "margin": m} for i, m in enumerate(margins)]}))
    rm_load.write_metrics({"pairs": 200, "accuracy": 0.52, "mean_margin": 0.01, "longer_wins": 0.8,
                                 "longer_chosen": 0.5, "length_bias": 0.3, "length_pairs": 120,
                                 "score_mean": 0.0, "score_std": 1.0}, run)
    doctor.main([str(run), "--json"])
    found = {f["symptom"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {"rm_at_chance", "rm_margins_collapsing", "rm_tracks_length"} <= found


@pytest.mark.slow
def test_doctor_is_quiet_on_a_healthy_rm(rm_run, capsys):
    from tinyalign import doctor

    doctor.main([str(rm_run), "--json"])
    assert not [f for f in json.loads(capsys.readouterr().out)["findings"] if f["symptom"].startswith("rm_")]


@pytest.mark.slow
def test_evaluate_scores_each_rm_checkpoint_on_held_out_pairs(rm_run, tmp_path):
    from tinyalign import evaluate

    table = evaluate.evaluate_run(rm_run, out=tmp_path)
    assert [row["model"] for row in table] == ["checkpoint-50", "checkpoint-100", "checkpoint-150", "final"]
    metrics = json.loads((rm_run / rm_load.METRICS).read_text())
    assert table[-1]["accuracy"] == metrics["accuracy"]
    assert table[-2]["accuracy"] == pytest.approx(metrics["accuracy"], abs=0.03)  # the same weights, reloaded
    # every checkpoint's own trained weights were scored: an adapter that failed to load would sit at chance
    assert all(row["accuracy"] >= 0.7 and row["mean_margin"] > 0.5 for row in table), table
    assert (tmp_path / "eval.csv").read_text().startswith("model,step,accuracy")


def test_doctor_names_a_hacked_reward_model(tmp_path, capsys):
    from tinyalign import doctor

    run = tmp_path / "grpo"
    run.mkdir()
    (run / "recipe.yaml").write_text("method: grpo\nrewards: [{name: reward_model, model: runs/rm, weight: 1.0}]\n")
    (run / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 5 * (i + 1), "reward": 0.2 * i, "rewards/reward_model/mean": 0.2 * i} for i in range(12)]}))
    # the learned reward climbs while the completions stay as wrong as they were
    rows = [{"step": 5 * (i // 4 + 1), "completion": "68)", "answer": "68", "rewards": {}} for i in range(48)]
    (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    doctor.main([str(run), "--json"])
    hacked = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["symptom"] == "rm_hacked"]
    assert hacked and "rewards.0.weight=0.5" in hacked[0]["command"]


@pytest.mark.parametrize("right_at_the_end, hacked", [(False, True), (True, False)])
def test_doctor_names_a_hacked_implicit_reward_in_its_own_units(tmp_path, capsys, right_at_the_end, hacked):
    """A DPO run's implicit reward is raw (beta times a log-ratio): its rise is measured against the spread of
    its own first scores. On SmolLM2's sums GRPO on it learned to echo the first operand ("63" for 63+71)."""
    from tinyalign import doctor

    run = tmp_path / "grpo"
    run.mkdir()
    (run / "recipe.yaml").write_text("method: grpo\nrewards: [{name: implicit_reward, model: runs/dpo}]\n")
    (run / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": i + 1, "reward": 0.3 * i - 1, "rewards/implicit_reward/mean": 0.3 * i - 1} for i in range(12)]}))
    rows = [{"step": i // 8 + 1, "completion": "134" if right_at_the_end and i >= 48 else "63", "answer": "134",
             "rewards": {"implicit_reward": 0.3 * (i // 8) - 1 + (i % 8 - 3.5) / 10}} for i in range(96)]
    (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    doctor.main([str(run), "--json"])
    found = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["symptom"] == "rm_hacked"]
    assert bool(found) == hacked, found
    if hacked:
        assert "rewards/implicit_reward/mean rose" in found[0]["evidence"]


@pytest.mark.slow
def test_killed_rm_run_resumes_to_the_same_weights(votes, tmp_path):
    import sys

    from safetensors.torch import load_file
    from test_resume import RTOL, finish, kill_then_resume, logs_of, relative

    cmd = [sys.executable, "-m", "tinyalign.rm", RECIPE, f"data.source={votes}", "train.max_steps=40",
           "train.save_steps=20", "train.logging_steps=5"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finish(cmd + [f"output_dir={whole}"])
    kill_then_resume(cmd, resumed, at=20)
    assert sorted(logs_of(resumed)) == sorted(logs_of(whole))
    a, b = load_file(whole / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert any("score" in key for key in a) and a.keys() == b.keys()
    assert max(relative(a[k], b[k]) for k in a) < RTOL
    metrics = [json.loads((run / rm_load.METRICS).read_text())["accuracy"] for run in (whole, resumed)]
    assert metrics[0] == metrics[1]


@pytest.mark.slow
def test_pairwise_judge_from_votes_runs_every_step_on_a_real_model(votes, rm_run, start_run, tmp_path, capsys):
    """split -> untrained judge -> rejection-sampled traces -> SFT -> GRPO on verdicts -> the judge as a
    GRPO reward. The 0.8M tiny base cannot write the judging form, so this checks each step's contract
    on real models, not how good the judge gets (bench/RESULTS.md has those figures)."""
    from tinyalign import grpo, judge

    pairs = tmp_path / "pairs"
    judge.main(["split", "--pairs", str(votes), "--out", str(pairs)])
    train, test = judge.read_pairs(pairs / "train.jsonl"), judge.read_pairs(pairs / "test.jsonl")
    assert test and train and not set(test) & set(train)
    small = tmp_path / "small.jsonl"  # 30 training pairs keep the sampling short
    small.write_text("".join((pairs / "train.jsonl").read_text().splitlines(keepends=True)[:30]))

    report = judge.evaluate("tiny:qwen2-1m", test[:20], rm=str(rm_run), max_new_tokens=8, batch_size=64)
    assert report["pairs"] == 20 and report["unparsed"] == 1.0  # no VERDICT line: each was redone, guided
    # The untrained judge says nothing about the answers: measured, it called all 20 pairs a tie (agreement
    # 0 %, no position bias). Two pairs of slack, as the guided choice among A, B and tie is a near thing.
    assert report["ties"] >= 0.9 and report["agreement"] <= 0.1, report
    # the scalar RM's column is filled from the same pairs: over all held-out pairs it measured 85-91 %
    # (test_reward_model_from_votes_ranks_held_out_pairs); on 20 of them a 60 % floor fails an RM of 82 % once in
    # 200 runs, and an RM at chance (50 %) three times in four
    assert report["rm_agreement"] >= 0.6, report

    judge.main(["traces", "--judge", "tiny:qwen2-1m", "--pairs", str(small), "--k", "2", "--max-new-tokens", "8",
                "--batch-size", "64", "--out", str(tmp_path / "traces.jsonl")])
    assert "kept" in capsys.readouterr().out
    voted = {(t, c) for t, c, _ in judge.read_pairs(small)}
    kept = [json.loads(line) for line in open(tmp_path / "traces.jsonl")]
    assert 0 < len(kept) < 30 * 2 * 2
    for row in kept:  # every kept judgement names the answer people chose, in whichever position it was shown
        task = row["judge_prompt"].split("Task: ")[1].split("\nAnswer A: ")[0]
        a, b = row["judge_prompt"].split("\nAnswer A: ")[1].split("\nAnswer B: ")
        named = a if pairwise.parse_verdict(row["judgement"]) == "A" else b
        assert (task, named) in voted

    distilled = tmp_path / "judge_sft"
    sft.main([str(builtin("tiny_judge_sft.yaml")), f"data.source={tmp_path / 'traces.jsonl'}",
              "train.max_steps=4", f"output_dir={distilled}"])
    judge.main(["verdicts", "--pairs", str(small), "--out", str(tmp_path / "verdicts.jsonl")])
    grpo.main([str(builtin("tiny_judge_grpo.yaml")), f"data.source={tmp_path / 'verdicts.jsonl'}",
               f"model.adapter={distilled}", "train.max_steps=2", "train.per_device_train_batch_size=16",
               "train.logging_steps=1", f"output_dir={tmp_path / 'judge_grpo'}"])
    history = json.loads((tmp_path / "judge_grpo" / "trainer_state.json").read_text())["log_history"]
    assert history[-1]["step"] == 2 and "rewards/judge_verdict/mean" in history[0]
    # each sampled judgement earned 1 exactly when its verdict is the one people voted for (measured: the
    # 4-step judge wrote the held verdict in none of them, mean 0.0, so these two steps learn nothing)
    held = {}
    for line in open(tmp_path / "verdicts.jsonl"):
        row = json.loads(line)
        held[row["judge_prompt"]] = row["verdict"]
    judged = [json.loads(line) for line in open(tmp_path / "judge_grpo" / "completions.jsonl")]
    assert judged
    for row in judged:
        prompt = row["prompt"] if isinstance(row["prompt"], str) else row["prompt"][-1]["content"]
        verdict = next(v for p, v in held.items() if p in prompt)
        assert row["rewards"]["judge_verdict"] == float(pairwise.parse_verdict(row["completion"]) == verdict), row

    # the trained judge as a policy's reward: each answer meets the reference, verdicts logged for review
    grpo.main([str(builtin("tiny_grpo.yaml")), f"model.adapter={start_run}", "probe=false",
               "rewards.0.name=pairwise_judge", f"rewards.0.judge={tmp_path / 'judge_grpo'}", "rewards.0.against=reference",
               "rewards.0.max_new_tokens=8", "train.max_steps=1", "train.per_device_train_batch_size=16",
               "train.logging_steps=1", f"output_dir={tmp_path / 'policy'}"])
    rows = [json.loads(line) for line in open(tmp_path / "policy" / "completions.jsonl")]
    # one comparison per answer, against the reference, asked in both orders: a win, a tie or a loss
    # (measured: 0.5 for all 16, the judge naming position A in both orders, a tie that says nothing)
    assert rows and all(row["judge_verdicts"].count("VERDICT: [[") == 1 for row in rows), rows[0]
    assert {row["rewards"]["pairwise_judge"] for row in rows} <= {0.0, 0.5, 1.0}, rows


@pytest.mark.slow
def test_the_loop_s_dpo_step_trains_the_policy_on_the_votes_themselves(start_run, tmp_path, capsys):
    """--policy-step dpo: DPO on round 1's pairs is the policy step (no reward model between the votes and
    the policy); the rule's baseline is GRPO from the same start, and round 2 votes the DPO policy."""
    table = loop.run_loop(str(start_run), tmp_path / "loop", policy_step="dpo")
    first, rule, second = table
    assert (first["policy"], rule["policy"]) == ("dpo_votes", "grpo_rule"), table
    assert (tmp_path / "loop" / "grpo-rule" / "completions.jsonl").is_file() and not (tmp_path / "loop" / "dpo-rule").exists()
    # DPO on the votes reached 1.03-1.06 of the rule's gain over six loops (bench/RESULTS.md, "DPO on the votes
    # as the loop's policy step"): its one pass over the votes is not a race against the rule's 30-step turn
    learned = first["policy_accuracy"] - first["start_accuracy"]
    ruled = rule["policy_accuracy"] - rule["start_accuracy"]
    assert learned >= 0.6 and learned >= 0.8 * ruled and first["gain_interval"][0] > 0, table
    assert first["dpo_likelihood_accuracy"] >= 0.9, table
    assert second["rm_accuracy"] >= second["rm_r1_on_r2"] - 0.03, table
    assert second["arena_rating"]["dpo_votes"] > second["arena_rating"]["sft"], table
    printed = capsys.readouterr().out
    assert "DPO on the votes alone: +" in printed and "GRPO on the rule: +" in printed
    assert "round 1: DPO on the same pairs, from the start (the policy step)" in printed


# ---------------------------------------------------------------- the loop with the pairwise judge as its reward


@pytest.mark.parametrize("options, named", [({"policy_step": "filter"}, "--policy-step filter"),
                                            ({"policy_step": "dpo"}, "--policy-step dpo"),
                                            ({"with_dpo": True}, "--with-dpo"), ({"judge": "tiny:qwen2-1m"}, "--judge")])
def test_the_loop_refuses_the_judge_reward_with_an_rm_option_before_it_writes_anything(tmp_path, options, named):
    with pytest.raises(UserError, match=f"^--reward judge takes GRPO steps on the judge it trains from the votes; "
                                        f"{named} is for --reward rm$"):
        loop.run_loop(None, tmp_path / "loop", reward="judge", **options)
    assert not (tmp_path / "loop").exists()


def test_loop_run_names_a_judge_reward_it_cannot_take_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        loop.main(["run", "--reward", "judge", "--policy-step", "dpo", "--out", str(tmp_path / "loop")])
    assert exited.value.code == 2 and not (tmp_path / "loop").exists()
    said = ("error: --reward judge takes GRPO steps on the judge it trains from the votes; --policy-step dpo is for "
            "--reward rm")
    assert capsys.readouterr().err.strip().splitlines() == [said]


@pytest.mark.parametrize("name", list(loop.TASKS))
def test_each_loop_task_s_judge_rounds_have_a_reference_and_recipes_that_take_their_settings(name, tmp_path):
    """A wrong key in the judge's settings would surface only after round 1's votes; the checker's reference
    must be the prompt's own sum."""
    from tinyalign.data.messages import task_text
    from tinyalign.loop import judge_rounds

    task = loop.TASKS[name]
    prompts = recipes.load(task.prompts)
    train, _ = data.splits(prompts.data, prompts.seed)
    for row in train.select(range(20)):
        a, b = map(int, row["question"].split("+"))
        assert task.reference(task_text(data.prompt_messages(prompts.data, row))) == f"{a} + {b} = {int(row['answer'])}"
    first = recipes.load(task.judge_sft, judge_rounds.judge_sft_settings(task, tmp_path / "t.jsonl", tmp_path / "j1"),
                         method="sft")
    second = recipes.load(task.judge_sft, judge_rounds.judge_sft_settings(task, tmp_path / "t.jsonl", tmp_path / "j2",
                                                                          continued=tmp_path / "j1"), method="sft")
    assert str(second.model.adapter) == str(tmp_path / "j1") and first.model.adapter is None
    assert second.train["learning_rate"] == first.train["learning_rate"] / 2
    if "max_steps" in first.train:  # half the steps, or half the epochs
        assert second.train["max_steps"] == first.train["max_steps"] // 2
    else:
        assert second.train["num_train_epochs"] == first.train["num_train_epochs"] / 2
    policy = recipes.load(task.grpo, {**task.learned_reward_settings, **judge_rounds.judge_reward(task, tmp_path)},
                          method="grpo")
    [reward] = policy.rewards
    assert (reward["name"], reward["against"], reward["checker"]) == ("pairwise_judge", "group", task.checker)
    assert task.checker in pairwise_reward.CHECKERS and first.model.name == policy.model.name
    rl = recipes.load(task.judge_rl, {**task.judge_rl_settings, "data.source": tmp_path, "model.adapter": tmp_path},
                      method="grpo")
    assert rl.train["learning_rate"] == 2e-5 and [r["name"] for r in rl.rewards] == ["judge_verdict"]
    assert rl.model.name == first.model.name
    if name == "smollm2-sums":  # the judge bench/studies/sums_judge.py measured
        assert first.train["num_train_epochs"] == 1 and task.judge_max_new_tokens == 64  # one epoch, as it trains


@pytest.mark.slow
def test_the_loop_trains_a_judge_and_a_policy_on_it_round_after_round(start_run, tmp_path, capsys, monkeypatch):
    """--reward judge on the tiny task, on a small budget: the judge distilled from the checker's traces, GRPO
    on it alone, round 2's judge continued on the pairs round 1's gets wrong, GRPO round 2 from round 1's
    policy. The 0.8M model cannot judge (it names one position or ties, 0 % agreement), so this checks
    the contract, not a gain."""
    import dataclasses

    tiny = loop.TASKS["tiny"]
    monkeypatch.setitem(loop.TASKS, "tiny", dataclasses.replace(
        tiny, judge_sft_settings={"train.max_steps": 4},
        judge_rl_settings={**tiny.judge_rl_settings, "train.max_steps": 1, "train.per_device_train_batch_size": 16},
        learned_reward_settings={"train.per_device_train_batch_size": 16, "train.logging_steps": 1}))
    out = tmp_path / "loop"
    table = loop.run_loop(str(start_run), out, prompts=100, grpo_steps=2, reward="judge")
    first, rule, second = table
    assert (first["policy"], rule["policy"], second["policy"]) == ("grpo_judge", "grpo_rule", "grpo_judge_r2")
    for row in (first, second):  # the judge's figures on each round's held-out pairs, where the RM's would be
        assert all(0.0 <= row[f"judge_{k}"] <= 1.0 for k in ("agreement", "position_bias", "unparsed")), table
        assert "rm_accuracy" not in row and row["traces"] > 0
    assert 0.0 <= second["judge_r1_agreement_on_r2"] <= 1.0 and 0.0 <= second["judge_r1_position_bias_on_r2"] <= 1.0
    assert second["arena_rating"].keys() == {"sft", "grpo_judge"}
    low, high = second["gain_over_r1_interval"]
    assert low <= second["policy_accuracy"] - second["r1_accuracy"] <= high
    # every pair carries its worked solution; round 2's judge learned round 1's traces and the new ones
    assert all(json.loads(line)["reference"] for line in (out / "pairs-r2" / "train.jsonl").read_text().splitlines())
    assert len((out / "judge-r2-traces.jsonl").read_text().splitlines()) == first["traces"] + second["traces"]
    # continued by SFT at half the rate for half the steps, then RL on its mistakes at 2e-5
    distilled = yaml.safe_load((out / "judge-r2-sft" / "recipe.yaml").read_text())
    assert distilled["model"]["adapter"] == str(out / "judge-r1") and distilled["train"]["max_steps"] == 2
    assert second["judge_rl"] and second["misjudged"] > 0, table
    judge2 = yaml.safe_load((out / "judge-r2" / "recipe.yaml").read_text())
    assert judge2["method"] == "grpo" and judge2["model"]["adapter"] == str(out / "judge-r2-sft")
    assert judge2["train"]["learning_rate"] == 2e-5 and [r["name"] for r in judge2["rewards"]] == ["judge_verdict"]
    verdicts = [json.loads(line) for line in (out / "judge-r2-verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == 2 * second["misjudged"]
    # RL continues the judge's own solution of each task, as GRPO's reward asks it, not an inline judgement
    assert judge2["data"]["reply_start"] == "{judge_start}"
    assert all(v["judge_start"].startswith("TYPE: ") and v["judge_start"].endswith("\nEVALUATION:") for v in verdicts)
    # each policy trained on the judge alone, against its group, the rule only logged beside it
    for run, start, judge in (("grpo-judge-r1", start_run, "judge-r1"), ("grpo-judge-r2", out / "grpo-judge-r1", "judge-r2")):
        recipe = yaml.safe_load((out / run / "recipe.yaml").read_text())
        assert recipe["model"]["adapter"] == str(start), run  # round 2 went on from round 1's policy
        assert [(r["name"], r["judge"], r["against"], r["checker"], r["solve_first"]) for r in recipe["rewards"]] == [
            ("pairwise_judge", str(out / judge), "group", "exact_match", True)]  # solving before reading the answers
        history = json.loads((out / run / "trainer_state.json").read_text())["log_history"]
        steps = [entry for entry in history if "rewards/pairwise_judge/mean" in entry]
        assert [entry["step"] for entry in steps] == [1, 2], history
        assert all("pairwise_judge/position_bias" in entry and "pairwise_judge/judged" in entry for entry in steps)
        assert (out / run / "adapter_model.safetensors").is_file()
    assert json.loads((out / "loop.json").read_text()) == json.loads(json.dumps(table))
    printed = capsys.readouterr().out
    assert ("| round | votes | judge_agreement | judge_position_bias | judge_r1_agreement_on_r2 | "
            "judge_r1_position_bias_on_r2 | start_accuracy | policy_accuracy | gain | arena_rating |") in printed
    assert "GRPO on the judge alone: " in printed and "GRPO on the rule: " in printed
    assert "GRPO round 2 on round 2's judge, from round 1's policy: " in printed and " over round 1" in printed


@pytest.mark.slow
def test_the_loop_s_grpo_on_a_judge_logs_the_rule_s_agreement_with_its_verdicts_each_step(start_run, tmp_path,
                                                                                         monkeypatch):
    """The loop's GRPO stage on a judge that decides (a stand-in that judges as the rule does, in both orders:
    the tiny judge decides nothing, so nothing would be checked): each step logs how often the rule sides with
    its verdicts on the policy's own answers."""
    import dataclasses

    from tinyalign.loop import judge_rounds

    def as_the_rule(self, triples, desc=None, orders=2):  # the answer that is the task's sum wins; else a tie
        outcomes = []
        for task, x, y in triples:
            right = str(sum(map(int, task.split("+"))))
            winner = "x" if x.strip() == right != y.strip() else "y" if y.strip() == right != x.strip() else "tie"
            outcomes.append({"winner": winner, "position_bias": False, "unparsed": 0,
                             "judgements": ["VERDICT: [[A]]", "VERDICT: [[B]]"]})
        return outcomes

    monkeypatch.setattr(pairwise.PairJudge, "compare", as_the_rule)
    task = dataclasses.replace(loop.TASKS["tiny"], learned_reward_settings={"train.logging_steps": 1})
    judge_rounds.grpo_on_judge(task, start_run, start_run, 2, tmp_path / "policy")
    history = json.loads((tmp_path / "policy" / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in history if "rewards/pairwise_judge/mean" in entry]
    assert len(steps) == 2 and all(entry["pairwise_judge/checker_agreement"] == 1.0 for entry in steps), history
