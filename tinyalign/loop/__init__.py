"""python -m tinyalign.loop — policy and reward model trained together, offline, with simulated annotators.

    votes -> reward model -> a policy step on the learned reward alone -> held-out exact match
          -> the new checkpoint's answers voted on -> reward model round 2

The policy step is GRPO on the reward model, or (--policy-step filter) best-of-8: the start's answers
to training prompts, the one the reward model scores highest kept, and one epoch of SFT on them; with
--with-dpo a DPO run on the same votes scores them too, and the surest half by both is kept. Or
(--policy-step dpo) DPO on the votes themselves: the policy that the reward they imply asks for, with no
reward model between the votes and the policy. Beside it the rule reward takes the same step from the
same start (GRPO, where the step is DPO): what the learned reward should reach.
The annotators (tinyalign.experiments.annotators) vote through the app's vote store and its DPO export, so the
reward model trains on exactly what real votes would give it; each task's recipes and settings are in
tinyalign.experiments.tasks. Every stage is a method's `train(recipe)`.

    python -m tinyalign.loop votes --policy sft=runs/tiny_sft --db runs/tiny_votes.sqlite
    python -m tinyalign.loop votes --task smollm2-sums --policy sft=runs/smollm2_sums_sft --db runs/sums_votes.sqlite
    python -m tinyalign.loop run --sft runs/tiny_sft --out runs/loop      # the whole loop, ~3 min on CPU
    python -m tinyalign.loop run ... --judge runs/tiny_judge_sft   # a pairwise judge scored beside the RM
    python -m tinyalign.loop run --task smollm2-sums --sft runs/smollm2_sums_sft --out runs/loop-sums   # SmolLM2, ~21 min
    python -m tinyalign.loop run --task smollm2-sums --sft ... --policy-step filter --out ...   # best-of-8, then SFT
    python -m tinyalign.loop run --task smollm2-sums --sft ... --policy-step filter --with-dpo --out ...
    python -m tinyalign.loop run --task smollm2-sums --sft ... --policy-step dpo --out ...      # DPO on the votes
    python -m tinyalign.loop run --task smollm2-sums --sft ... --reward judge --out ...         # the judge as reward

With --reward judge the learned reward is a pairwise reasoning judge distilled from a checker's judgements of
the voted pairs (tinyalign/loop/judge_rounds.py); round 2 continues it on the new pairs it gets wrong.
"""

import json
from pathlib import Path
from statistics import mean

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli, positive_int
from tinyalign.core.run_logs import DPO_METRICS
from tinyalign.experiments.annotators import annotate
from tinyalign.experiments.tasks import TASKS, Task
from tinyalign.measure.pair_files import read_pair_rows, read_pairs, split_pairs

HELD_OUT = 500  # held-out problems each policy is scored on
STEPS = {"grpo": "GRPO", "filter": "best-of-8 then SFT", "dpo": "DPO"}  # the policy steps, as the console names them
LEARNED = {"grpo": "grpo_rm", "filter": "filter_rm", "dpo": "dpo_votes"}  # the learned step's policy, as tables name it
REWARDS = {"rm": "a scalar reward model", "judge": "a pairwise reasoning judge"}  # --reward: what the votes train
RULE_STEP = {"grpo": "grpo", "filter": "filter", "dpo": "grpo"}  # the baseline's step: the rule casts no pairs to DPO on
# --with-dpo keeps the surest half of the prompts: a share, not a bar, as the likelihood is bounded above and
# its top picks crowd where a bar moves the kept count by hundreds (bench/RESULTS.md, "Keeping only the two
# rewards' surest picks")
SUREST = 0.5


def run_loop(sft: "str | None", out, prompts: int | None = None, grpo_steps: int = 30, baseline: bool = True,
             seed: int = 0, judge: str | None = None, task: str = "tiny", policy_step: str = "grpo",
             with_dpo: bool = False, reward: str = "rm") -> list[dict]:
    """Two rounds of votes -> RM -> a policy step on the RM; returns one row per round (and the rule baseline).

    `sft`: the starting policy's run directory (None: the base model). `task`: a name in TASKS.
    `policy_step`: "grpo" (`grpo_steps` steps), "filter" (best of 8 by the reward, then SFT on them) or
    "dpo" (DPO on round 1's pairs; the rule's baseline is then GRPO).
    `with_dpo`: DPO on the same pairs too; the filter ranks by the RM and the DPO model's likelihood together.
    `judge`: a pairwise judge (a model or a tinyalign.judge run) scored on each round's held-out votes
    beside the RM, so the table shows whether a judge would have served as the reward.
    `reward`: "rm", or "judge": a pairwise judge trained on the votes is the reward (run_judge_loop).
    """
    from tinyalign import dpo, grpo, rm
    from tinyalign.config import recipe as recipes
    from tinyalign.measure.solve_rate import held_out_verdicts
    from tinyalign.models.reward_model import held_out_stats
    from tinyalign.rewards.pairwise import PairJudge
    from tinyalign.votes import leaderboard

    setup = TASKS[task]
    if policy_step not in STEPS:
        raise UserError(f"policy_step must be one of {', '.join(STEPS)}, not {policy_step!r}")
    if reward not in REWARDS:
        raise UserError(f"reward must be one of {', '.join(REWARDS)}, not {reward!r}")
    if reward == "judge" and (policy_step != "grpo" or with_dpo or judge):
        extra = f"--policy-step {policy_step}" if policy_step != "grpo" else "--with-dpo" if with_dpo else "--judge"
        raise UserError(f"--reward judge takes GRPO steps on the judge it trains from the votes; {extra} is for "
                        "--reward rm")
    if with_dpo and policy_step != "filter":
        raise UserError("--with-dpo ranks the filter's answers (--policy-step filter); GRPO takes the reward model "
                        "alone, and --policy-step dpo is the DPO run itself")
    prompts = prompts or setup.votes_prompts
    out = files.check_folder_out(out)
    pair_judge = PairJudge(judge) if judge else None  # loaded on first use, once for both rounds
    if out.exists() and any(out.iterdir()):  # it appends votes and replaces runs: only in a folder of its own
        raise UserError(f"--out {out} is not empty; the loop writes its votes, reward models and runs into a new folder")
    if reward == "judge":
        return run_judge_loop(setup, sft, out, prompts, grpo_steps, baseline, seed)
    table = []
    start = "sft" if sft else "base"
    rm_start = {"model.policy": sft} if sft and setup.rm_from_policy else {}
    rm_train = {**setup.rm_settings, **rm_start, "data.split": "train", "data.test_split": "test", "overwrite": True}
    from_start = {"model.adapter": sft} if sft else {}
    learned_reward = {"rewards": [{"name": "reward_model", "model": out / "rm-r1"}]}
    if with_dpo:  # the two learned rewards in standard units, summed (sample's `standardize`)
        learned_reward = {"rewards": [{"name": "reward_model", "model": out / "rm-r1"},
                                      {"name": "implicit_reward", "model": out / "dpo-r1", "reference": "none"}]}

    drawn = None  # the filter's answers: one draw from the start, scored under each reward
    rule_step = RULE_STEP[policy_step]
    trains_dpo = with_dpo or policy_step == "dpo"

    def step(kind: str, reward: dict, run_dir: Path, learned: bool) -> None:  # the policy step from the start
        nonlocal drawn
        if kind == "grpo":
            grpo.train(recipes.load(setup.grpo, {
                **from_start, "probe": False, "overwrite": True, "train.max_steps": grpo_steps,
                **(setup.learned_reward_settings if learned else {}), **reward, "output_dir": run_dir}, method="grpo"))
        else:
            bar, top = None, None  # the rule keeps right answers only
            if learned:  # a learned score has no top: every prompt's best; with DPO beside the RM, the surest half
                bar, top = float("-inf"), SUREST if with_dpo else None
            drawn = best_of(setup, from_start, reward, run_dir, bar, top, drawn, standardize=learned and with_dpo)

    # round 1: the start's answers, voted; an RM (fresh, or from the start where the task says); the step on it alone
    db1 = out / "votes-r1.sqlite"
    votes1 = annotate(db1, {start: sft}, prompts, seed, setup.prompts, setup.rule)
    print_votes(1, votes1, split_pairs(db1, out / "pairs-r1", seed=seed))
    say(f"round 1: a reward model on those pairs -> {out / 'rm-r1'}")
    rm.train(recipes.load(setup.rm, {"data.source": out / "pairs-r1", **rm_train, "output_dir": out / "rm-r1"},
                          method="rm"))
    if trains_dpo:  # the policy step itself, or a second reward that errs where the RM does not
        role = "the policy step" if policy_step == "dpo" else "its likelihood ranks beside the RM"
        say(f"round 1: DPO on the same pairs, from the start ({role}) -> {out / 'dpo-r1'}")
        dpo.train(recipes.load(setup.dpo, {
            "data.source": out / "pairs-r1", "data.split": "train", "data.test_split": "test", **setup.dpo_settings,
            "model.adapter": sft, "overwrite": True, "output_dir": out / "dpo-r1"}, method="dpo"))
    learned, learned_run = LEARNED[policy_step], out / ("dpo-r1" if policy_step == "dpo" else f"{policy_step}-r1")
    rule_run = out / f"{rule_step}-rule"
    if policy_step != "dpo":
        rewards = "the reward model and the DPO model's likelihood" if with_dpo else "the reward model alone"
        say(f"round 1: {STEPS[policy_step]} on {rewards} -> {learned_run}")
        step(policy_step, learned_reward, learned_run, learned=True)
    policies = {learned: str(learned_run)}
    if baseline:  # the rule reward from the same start with the same budget: what the learned one should reach
        say(f"baseline: {STEPS[rule_step]} on the rule reward, same start and budget -> {rule_run}")
        step(rule_step, {}, rule_run, learned=False)
        policies[f"{rule_step}_rule"] = str(rule_run)
    say(f"held-out accuracy on {HELD_OUT} problems, greedy:")
    right = held_out_verdicts(str(setup.prompts), {**({start: sft} if sft else {}), **policies},
                              limit=HELD_OUT, base=not sft)

    def scored(policy):  # accuracies, and the gain's paired 95 % interval (the same questions for both)
        return paired_gain(right, start, policy)

    rm1 = held_out_stats(out / "rm-r1")["accuracy"]
    table.append({"round": 1, "votes": votes1["votes"], "rm_accuracy": rm1,
                  **({"dpo_likelihood_accuracy": dpo_likelihood(out / "dpo-r1")} if trains_dpo else {}),
                  "judge_agreement": judge_agreement(pair_judge, out / "pairs-r1" / "test.jsonl"),
                  **scored(learned)})
    if baseline:
        table.append({"round": "rule", **scored(f"{rule_step}_rule")})

    # round 2: the new checkpoint into the arena against its start; RM round 1 continued on both rounds' votes
    db2 = out / "votes-r2.sqlite"
    votes2 = annotate(db2, {start: sft, learned: str(learned_run)}, prompts, seed + 1, setup.prompts, setup.rule)
    print_votes(2, votes2, split_pairs(db2, out / "pairs-r2", seed=seed + 1))
    with open(out / "pairs-r2" / "train.jsonl", "a") as f:  # round 1's votes still hold: train on both rounds
        f.write((out / "pairs-r1" / "train.jsonl").read_text())
    # continued at half the learning rate for half the steps, so round 2 adds to what round 1 learned rather
    # than relearning it (and overfitting): bench/RESULTS.md, "Reward model and policy together on the tiny task"
    shipped = recipes.load(setup.rm, setup.rm_settings).train
    say(f"round 2: round 1's reward model continued on both rounds' pairs -> {out / 'rm-r2'}")
    rm.train(recipes.load(setup.rm, {
        "data.source": out / "pairs-r2", **rm_train, "model.adapter": out / "rm-r1",
        "train.learning_rate": shipped["learning_rate"] / 2, **half_the_steps(shipped), "output_dir": out / "rm-r2"},
        method="rm"))
    ratings = {row["model"]: row["rating"] for row in leaderboard(db2)}
    table.append({"round": 2, "votes": votes2["votes"],
                  "rm_accuracy": held_out_stats(out / "rm-r2")["accuracy"],
                  "rm_r1_on_r2": rm_accuracy(out / "rm-r1", out / "pairs-r2" / "test.jsonl"),
                  "judge_agreement": judge_agreement(pair_judge, out / "pairs-r2" / "test.jsonl"),
                  "arena_rating": {k: round(v) for k, v in ratings.items()}})
    (out / "loop.json").write_text(json.dumps(table, indent=2) + "\n")
    print_table(table, policy_step)
    return table


def run_judge_loop(setup: Task, sft: "str | None", out: Path, prompts: int, grpo_steps: int, baseline: bool,
                   seed: int) -> list[dict]:
    """run_loop's two rounds with a pairwise judge as the learned reward: votes -> pairs with their worked
    solutions -> the checker's traces -> judge SFT -> GRPO on the judge alone; round 2: votes on the new
    policy -> the pairs round 1's judge gets wrong -> the judge continued on them -> GRPO from round 1's policy."""
    from tinyalign import grpo
    from tinyalign.config import recipe as recipes
    from tinyalign.loop import judge_rounds as judging
    from tinyalign.measure.solve_rate import held_out_verdicts
    from tinyalign.votes import leaderboard

    start = "sft" if sft else "base"
    judge1, judge2, policy1, policy2 = out / "judge-r1", out / "judge-r2", out / "grpo-judge-r1", out / "grpo-judge-r2"
    from_start = {"model.adapter": sft} if sft else {}
    # round 1: the start's answers, voted; each pair given its worked solution, which the checker judges from
    db1 = out / "votes-r1.sqlite"
    votes1 = annotate(db1, {start: sft}, prompts, seed, setup.prompts, setup.rule)
    print_votes(1, votes1, split_pairs(db1, out / "pairs-r1", seed=seed))
    judging.with_references(out / "pairs-r1", setup)
    traces1, judged1 = judging.first_judge(setup, out / "pairs-r1", out / "judge-r1-traces.jsonl", judge1)
    say(f"round 1: GRPO on the judge alone, each answer against others of its group -> {policy1}")
    judging.grpo_on_judge(setup, sft, judge1, grpo_steps, policy1)
    if baseline:  # the rule reward from the same start with the same budget: what the judge should reach
        say(f"baseline: GRPO on the rule reward, same start and budget -> {out / 'grpo-rule'}")
        grpo.train(recipes.load(setup.grpo, {**from_start, "probe": False, "overwrite": True,
                                             "train.max_steps": grpo_steps, "output_dir": out / "grpo-rule"}, method="grpo"))

    # round 2: round 1's policy against its start; the judge continued on the new pairs it gets wrong
    db2 = out / "votes-r2.sqlite"
    votes2 = annotate(db2, {start: sft, "grpo_judge": str(policy1)}, prompts, seed + 1, setup.prompts, setup.rule)
    print_votes(2, votes2, split_pairs(db2, out / "pairs-r2", seed=seed + 1))
    judging.with_references(out / "pairs-r2", setup)
    judged2 = judging.next_judge(setup, judge1, traces1, out / "pairs-r2", out / "judge-r2-traces.jsonl", judge2)
    say(f"round 2: GRPO on round 2's judge alone, from round 1's policy -> {policy2}")
    judging.grpo_on_judge(setup, policy1, judge2, grpo_steps, policy2)

    say(f"held-out accuracy on {HELD_OUT} problems, greedy:")
    policies = {"grpo_judge": str(policy1), **({"grpo_rule": str(out / "grpo-rule")} if baseline else {}),
                "grpo_judge_r2": str(policy2)}
    right = held_out_verdicts(str(setup.prompts), {**({start: sft} if sft else {}), **policies},
                              limit=HELD_OUT, base=not sft)
    table = [{"round": 1, "votes": votes1["votes"], **judged1, **paired_gain(right, start, "grpo_judge")}]
    if baseline:
        table.append({"round": "rule", **paired_gain(right, start, "grpo_rule")})
    table.append({"round": 2, "votes": votes2["votes"], **judged2, **paired_gain(right, start, "grpo_judge_r2"),
                  "r1_accuracy": mean(right["grpo_judge"]),
                  "gain_over_r1_interval": paired_gain(right, "grpo_judge", "grpo_judge_r2")["gain_interval"],
                  "arena_rating": {row["model"]: round(row["rating"]) for row in leaderboard(db2)}})
    (out / "loop.json").write_text(json.dumps(table, indent=2) + "\n")
    print_table(table, "grpo")
    return table


def paired_gain(right: dict, start: str, policy: str) -> dict:
    """Two policies' held-out accuracies, and the gain's paired 95 % interval (the same questions for both)."""
    from tinyalign.measure.solve_rate import paired_interval95

    _, low, high = paired_interval95(right[start], right[policy])
    return {"policy": policy, "start_accuracy": mean(right[start]), "policy_accuracy": mean(right[policy]),
            "gain_interval": [low, high]}


def best_of(setup: Task, from_start: dict, reward: dict, run_dir: Path, bar: float | None,
            top: float | None = None, drawn: tuple | None = None, k: int = 8, standardize: bool = False) -> tuple:
    """The filter: `k` of the start's answers to the task's training prompts, each prompt's best by `reward`
    kept where it scores `bar` or more (`sample`'s min_reward: None, the reward's top), the surest `top`
    share of those, one epoch of SFT on them. `drawn`: the answers an earlier call sampled from the same
    start, scored again; returns them."""
    from tinyalign import sample, sft
    from tinyalign.config import recipe as recipes

    picks = run_dir.with_name(run_dir.name + "-picks.jsonl")
    recipe, adapter = sample.load_target(setup.grpo, {**from_start, **reward})
    report = sample.sample(recipe, picks, k, bar, setup.filter_prompts, adapter, hint=False, drawn=drawn,
                           standardize=standardize, top=top)
    sft.train(recipes.load(setup.sft, {**from_start, **filter_sft_settings(setup, picks), "overwrite": True,
                                       "output_dir": run_dir}, method="sft"))
    return report["drawn"]


def rm_accuracy(rm_dir, pairs_file) -> float:
    """A reward model's accuracy on a JSONL of pairs (chosen scored above rejected)."""
    from tinyalign.measure import reward_model as rm_measure
    from tinyalign.models import reward_model as rm_load

    scorer, tokenizer = rm_load.load_for_scoring(rm_dir)
    return rm_measure.measure(scorer, tokenizer, read_pair_rows(pairs_file))["accuracy"]


def judge_agreement(judge, pairs_file) -> float | None:
    """How often a pairwise judge (a PairJudge) sides with the votes on held-out pairs (None: no judge)."""
    if judge is None:
        return None
    from tinyalign.rewards.pairwise import agreement_with_votes

    return agreement_with_votes(judge, read_pairs(pairs_file))["agreement"]


def dpo_likelihood(run_dir: Path) -> float:
    """How often a DPO run's own likelihood sided with its held-out votes (`tinyalign.dpo` measured it)."""
    return json.loads((run_dir / DPO_METRICS).read_text())["likelihood_accuracy"]


def filter_sft_settings(setup: Task, picks: Path) -> dict:
    """The filter's SFT recipe settings: one epoch on the picks (their `completion`), none held out."""
    return {"data.source": picks, "data.test_split": None, "data.completion": "{completion}", "train.max_steps": None,
            "train.num_train_epochs": 1, **setup.filter_settings}


def half_the_steps(train: dict) -> dict:
    """The settings for half a reward-model recipe's training, counted in steps or in epochs."""
    if train.get("max_steps"):
        return {"train.max_steps": train["max_steps"] // 2}
    return {"train.num_train_epochs": train.get("num_train_epochs", 1) / 2}


def say(line: str) -> None:
    """A phase's one line, before its progress bar."""
    print(line, flush=True)


def print_votes(round_: int, votes: dict, pairs: dict) -> None:
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(votes["by_vote"].items()))
    say(f"round {round_}: {votes['votes']} votes ({kinds}) -> {pairs['train']} pairs to train on, {pairs['test']} held out")


def print_table(table: list[dict], policy_step: str) -> None:
    judged = "judge_position_bias" in table[0]  # --reward judge: the judge's figures where the RM's are
    dpo = ["dpo_likelihood_accuracy"] if "dpo_likelihood_accuracy" in table[0] else []
    shares = ["rm_accuracy", *dpo, "rm_r1_on_r2", "judge_agreement", "start_accuracy", "policy_accuracy"]
    if judged:
        shares = ["judge_agreement", "judge_position_bias", "judge_r1_agreement_on_r2", "judge_r1_position_bias_on_r2",
                  "start_accuracy", "policy_accuracy"]

    def fmt(key, v):  # a share that came out whole (an RM right on every pair) is still a share
        return "-" if v is None else f"{v:.1%}" if key in shares else str(v)

    keys = ["round", "votes", *shares, *(["gain"] if judged else []), "arena_rating"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in table:
        cells = {**row, "gain": gain(row["policy_accuracy"] - row["start_accuracy"], row, short=True) if judged else None}
        print("| " + " | ".join(fmt(k, cells.get(k)) for k in keys) + " |")
    rule = next((row for row in table if row["round"] == "rule"), None)
    if rule:  # what the loop is for: how much of the rule's gain the learned reward alone reached
        learned, ruled = (row["policy_accuracy"] - row["start_accuracy"] for row in (table[0], rule))
        share = f"; {learned / ruled:.2f} of the rule's gain" if ruled > 0 else ""
        what = "the votes alone" if policy_step == "dpo" else "the judge alone" if judged else "the learned reward alone"
        print(f"\n{STEPS[policy_step]} on {what}: {gain(learned, table[0])}{share}\n"
              f"{STEPS[RULE_STEP[policy_step]]} on the rule: {gain(ruled, rule)}")
    if judged:  # round 2 went on from round 1's policy: its gain over the start, and over round 1
        second = table[-1]
        print(f"GRPO round 2 on round 2's judge, from round 1's policy: "
              f"{gain(second['policy_accuracy'] - second['start_accuracy'], second)} over the start, "
              f"{gain(second['policy_accuracy'] - second['r1_accuracy'], second, 'gain_over_r1_interval')} over round 1")


def gain(points: float, row: dict, interval: str = "gain_interval", short: bool = False) -> str:
    """A gain as "+4.8 points (95 % interval +1.9 to +7.7)", the interval paired over the same questions."""
    low, high = row[interval]
    if short:
        return f"{points * 100:+.1f} ({low * 100:+.1f} to {high * 100:+.1f})"
    return f"{points * 100:+.1f} points (95 % interval {low * 100:+.1f} to {high * 100:+.1f})"


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.loop", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    votes = commands.add_parser("votes", help="simulated annotators vote on policies' answers into a vote store")
    votes.add_argument("--policy", action="append", required=True, help="name=run_dir; one or two")
    votes.add_argument("--db", required=True, help="the vote store, e.g. runs/tiny_votes.sqlite")
    votes.add_argument("--prompts", type=positive_int, help="prompts voted on (default: the task's)")
    votes.add_argument("--seed", type=int, default=0)
    task_help = "tiny: the 0.8M model; smollm2-sums: SmolLM2-135M-Instruct, sums answered as a bare number"
    votes.add_argument("--task", choices=list(TASKS), default="tiny", help=task_help + " (its prompts and annotator rule)")
    loop = commands.add_parser("run", help="the whole loop on an addition task; prints a per-round table")
    loop.add_argument("--task", choices=list(TASKS), default="tiny", help=task_help)
    loop.add_argument("--sft", help="the starting policy, e.g. runs/tiny_sft or runs/smollm2_sums_sft "
                                    "(default: the task's base model)")
    loop.add_argument("--out", required=True, help="folder for the votes, reward models and policy runs")
    loop.add_argument("--prompts", type=positive_int, help="prompts voted on per round (default: the task's)")
    loop.add_argument("--policy-step", choices=list(STEPS), default="grpo",
                      help="grpo: GRPO on the learned reward; filter: best of 8 answers by it, then one epoch of SFT; "
                           "dpo: DPO on the votes (the rule's baseline: GRPO)")
    loop.add_argument("--with-dpo", action="store_true",
                      help="DPO on the same votes too; the filter ranks answers by the reward model and the DPO "
                           "model's likelihood in standard units, and keeps the surest half of the prompts")
    loop.add_argument("--reward", choices=list(REWARDS), default="rm",
                      help="what the votes train as the learned reward: rm, a scalar reward model; judge, a pairwise "
                           "reasoning judge distilled from a checker's judgements of the voted pairs (GRPO only)")
    loop.add_argument("--grpo-steps", type=positive_int, default=30)
    loop.add_argument("--no-baseline", action="store_true", help="skip the policy step on the rule reward")
    loop.add_argument("--seed", type=int, default=0, help="sampling and held-out split (bench/RESULTS.md's loop tables: 0, 1, 2)")
    loop.add_argument("--judge", help="a pairwise judge (model or tinyalign.judge run) scored on each round's held-out votes")
    args = parser.parse_args(argv)
    if args.command == "run" and args.judge:
        from tinyalign.rewards.judge_model import check_judge

        check_judge(args.judge)  # a missing judge is named now, not after the loop's training runs
    if args.command == "votes":
        policies = dict(p.split("=", 1) for p in args.policy if "=" in p)
        if len(policies) != len(args.policy) or not 1 <= len(policies) <= 2:
            raise UserError("--policy takes name=run_dir, once or twice (e.g. --policy sft=runs/tiny_sft)")
        setup = TASKS[args.task]  # a round 1 of `run` on its own: the same prompts, rule and count
        done = annotate(args.db, policies, args.prompts or setup.votes_prompts, args.seed, setup.prompts, setup.rule)
        print(f"recorded {done['votes']} votes in {args.db}: " + ", ".join(f"{k} {n}" for k, n in done["by_vote"].items()))
    else:
        run_loop(args.sft, args.out, args.prompts, args.grpo_steps, not args.no_baseline, args.seed, args.judge,
                 args.task, args.policy_step, args.with_dpo, args.reward)
