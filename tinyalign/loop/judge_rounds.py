"""The loop's judge rounds (`python -m tinyalign.loop run --reward judge`): the pairwise reasoning judge,
distilled from a checker's traces on the voted pairs, as GRPO's learned reward, and continued on the pairs
it gets wrong once the new policy's answers are voted on.

Each stage is a library entry point given a recipe object (`sft.train`, `grpo.train`, `tinyalign.judge`'s
functions); the loop command (tinyalign/loop/__init__.py) calls them in order.
"""

from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.experiments.tasks import Task
from tinyalign.measure.pair_files import read_pair_rows, read_pairs

FIGURES = ("agreement", "position_bias", "unparsed", "ties")  # of `tinyalign.judge.evaluate`, kept in the table


def with_references(folder: Path, setup: Task) -> None:
    """Each pair of folder/train.jsonl and test.jsonl given its task's worked solution as `reference`."""
    from tinyalign.data.messages import task_text

    for name in ("train", "test"):
        path = folder / f"{name}.jsonl"
        rows = [{**row, "reference": setup.reference(task_text(row["prompt"]))} for _, row in files.read_jsonl(path)]
        files.write_jsonl(path, rows)


def checker_traces(rows: list[dict], out: Path, earlier: list[dict] = ()) -> list[dict]:
    """The checker's judgements of the pairs `rows` (both orders, where the final numbers single out the voted
    answer), written to `out` after `earlier`'s as SFT data; returns the new ones."""
    from tinyalign.judge import reference_traces

    traces = reference_traces(rows)
    files.write_jsonl(out, [*earlier, *traces])
    return traces


def train_judge(setup: Task, traces: Path, run_dir: Path, continued: Path | None = None) -> Path:
    """The judge distilled by SFT on `traces` from the task's judge recipe (judge_sft_settings)."""
    from tinyalign import sft
    from tinyalign.config import recipe as recipes

    return sft.train(recipes.load(setup.judge_sft, judge_sft_settings(setup, traces, run_dir, continued), method="sft"))


def judge_sft_settings(setup: Task, traces: Path, run_dir: Path, continued: Path | None = None) -> dict:
    """The judge recipe's settings: the task's, on `traces`; with `continued`, that judge trained on at half the
    recipe's learning rate for half its steps, as round 2's reward model is (so it adds to what round 1 learned
    rather than relearning it)."""
    from tinyalign.config import recipe as recipes

    settings = {"data.source": traces, **setup.judge_sft_settings, "overwrite": True, "output_dir": run_dir}
    if continued is not None:
        shipped = recipes.load(setup.judge_sft, setup.judge_sft_settings, method="sft").train
        steps = ({"train.max_steps": max(1, shipped["max_steps"] // 2)} if shipped.get("max_steps")
                 else {"train.num_train_epochs": shipped.get("num_train_epochs", 1) / 2})
        settings.update({"model.adapter": continued, "train.learning_rate": shipped["learning_rate"] / 2, **steps})
    return settings


def pair_judge(setup: Task, judge_dir: Path):
    """A PairJudge on a judge run, asked as GRPO's reward asks it (greedy, the task's judgement length)."""
    from tinyalign.rewards.pairwise import PairJudge

    return PairJudge(str(judge_dir), setup.judge_max_new_tokens, solve_first=setup.judge_solve_first)


def figures(setup: Task, judge_dir: Path, pairs_file: Path) -> dict:
    """A judge's agreement with the votes, position bias, unparsed rate and ties on held-out pairs."""
    from tinyalign.judge import evaluate

    report = evaluate(pair_judge(setup, judge_dir), read_pairs(pairs_file))
    return {key: report[key] for key in FIGURES}


def misjudged_rows(setup: Task, judge_dir: Path, pairs_file: Path) -> tuple[list[dict], list[tuple]]:
    """The pairs of `pairs_file` that the judge does not get right in both orders, greedily
    (`tinyalign.judge.misjudged`): (their rows, with the references; their (task, chosen, rejected))."""
    from tinyalign.judge import misjudged

    rows, pairs = read_pair_rows(pairs_file), read_pairs(pairs_file)
    wrong = set(misjudged(pair_judge(setup, judge_dir), pairs))
    kept = [(row, pair) for row, pair in zip(rows, pairs) if pair in wrong]
    return [row for row, _ in kept], [pair for _, pair in kept]


def rl_on_mistakes(setup: Task, pairs: list[tuple], judge_dir: Path, run_dir: Path) -> Path:
    """RM-R1's step (b) on the pairs a judge got wrong: GRPO from `judge_dir`, reward 1 when the verdict names
    the voted answer (`judge_verdict`), both orders of each pair, at the task's judge RL settings (2e-5); a
    solve-first judge continues its own solution of each task, as GRPO's reward asks it."""
    from tinyalign import grpo
    from tinyalign.config import recipe as recipes
    from tinyalign.judge import verdict_rows

    verdicts = run_dir.with_name(run_dir.name + "-verdicts.jsonl")
    heads = pair_judge(setup, judge_dir).heads([task for task, _, _ in pairs]) if setup.judge_solve_first else None
    files.write_jsonl(verdicts, verdict_rows(pairs, heads))
    return grpo.train(recipes.load(setup.judge_rl, {
        "data.source": verdicts, "model.adapter": str(judge_dir), **setup.judge_rl_settings, "probe": False,
        "overwrite": True, "output_dir": run_dir}, method="grpo"))


def judge_reward(setup: Task, judge_dir: Path) -> dict:
    """GRPO's rewards: the judge alone, each answer against others of its group (never the reference, which
    is the rule's), the rule's agreement with its verdicts logged per step and never rewarded."""
    return {"rewards": [{"name": "pairwise_judge", "judge": str(judge_dir), "against": "group",
                         "checker": setup.checker, "max_new_tokens": setup.judge_max_new_tokens,
                         "solve_first": setup.judge_solve_first, "batch_size": 64}]}


def grpo_on_judge(setup: Task, adapter: "str | Path | None", judge_dir: Path, steps: int, run_dir: Path) -> Path:
    """GRPO from `adapter` (None: the base model) on the judge's reward alone, with the task's learned-reward
    settings."""
    from tinyalign import grpo
    from tinyalign.config import recipe as recipes

    start = {"model.adapter": str(adapter)} if adapter else {}
    return grpo.train(recipes.load(setup.grpo, {
        **start, "probe": False, "overwrite": True, "train.max_steps": steps, **setup.learned_reward_settings,
        **judge_reward(setup, judge_dir), "output_dir": run_dir}, method="grpo"))


def first_judge(setup: Task, pairs: Path, traces: Path, run_dir: Path) -> tuple[list[dict], dict]:
    """Round 1's judge: the checker's traces of the training pairs, SFT on them, the judge's figures on the
    held-out pairs; (the traces, {traces, judge_agreement, judge_position_bias, ...})."""
    rows = read_pair_rows(pairs / "train.jsonl")
    written = checker_traces(rows, traces)
    if not written:
        raise UserError(f"{pairs}: in none of {len(rows)} training pairs does the reference's final number single "
                        "out the voted answer, so the checker writes no judgement to distil; vote on more prompts")
    say(f"round 1: a pairwise judge distilled from the checker's {len(written)} traces of those pairs -> {run_dir}")
    train_judge(setup, traces, run_dir)
    say("round 1: the judge on the held-out pairs, in both orders")
    return written, {"traces": len(written), **named(figures(setup, run_dir, pairs / "test.jsonl"), "judge_{}")}


def next_judge(setup: Task, earlier: Path, earlier_traces: list[dict], pairs: Path, traces: Path, run_dir: Path) -> dict:
    """Round 2's judge: the training pairs `earlier`'s judge gets wrong, the checker's traces of them (after
    round 1's), `earlier` continued on them by SFT, then (where the task has `judge_rl`) RL on them;
    both judges' figures on the held-out pairs."""
    say("round 2: round 1's judge on those training pairs, in both orders: the ones it gets wrong")
    wrong, wrong_pairs = misjudged_rows(setup, earlier, pairs / "train.jsonl")
    written = checker_traces(wrong, traces, earlier=earlier_traces)
    rl = setup.judge_rl is not None and bool(wrong)
    distilled = run_dir.with_name(run_dir.name + "-sft") if rl else run_dir
    say(f"round 2: round 1's judge continued on the checker's {len(written)} traces of the {len(wrong)} pairs "
        f"it got wrong, and round 1's -> {distilled}")
    train_judge(setup, traces, distilled, continued=earlier)
    if rl:
        rate = judge_rl_rate(setup)
        say(f"round 2: RL on those {len(wrong)} pairs, reward 1 when the verdict names the voted answer, "
            f"lr {rate:g} -> {run_dir}")
        rl_on_mistakes(setup, wrong_pairs, distilled, run_dir)
    say("round 2: both rounds' judges on round 2's held-out pairs")
    return {"misjudged": len(wrong), "traces": len(written), "judge_rl": rl,
            **named(figures(setup, run_dir, pairs / "test.jsonl"), "judge_{}"),
            **named(figures(setup, earlier, pairs / "test.jsonl"), "judge_r1_{}_on_r2")}


def judge_rl_rate(setup: Task) -> float:
    from tinyalign.config import recipe as recipes

    return recipes.load(setup.judge_rl, setup.judge_rl_settings, method="grpo").train["learning_rate"]


def named(report: dict, pattern: str) -> dict:
    return {pattern.format(key): value for key, value in report.items()}


def say(line: str) -> None:
    """A phase's one line, before its progress bar (as the loop's)."""
    print(line, flush=True)
