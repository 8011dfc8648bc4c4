"""python -m tinyalign.judge — a pairwise reasoning judge trained from people's votes (RM-R1 in miniature).

The judge (tinyalign/rewards/pairwise.py, asking tinyalign/rewards/judge_model.py) writes the task type,
its own solution or a rubric, an evaluation of both answers and a verdict, asked in both orders. It
learns from the votes in two runs, and the held-out votes enter neither:

    python -m tinyalign.judge split --pairs runs/tiny_votes.sqlite --out runs/judge_pairs   # train/test
    # (a) distillation by rejection sampling: K judgements per voted pair, keep those that agree
    python -m tinyalign.judge traces --judge tiny:qwen2-1m --pairs runs/judge_pairs/train.jsonl --out runs/judge_traces.jsonl
    #     or from a checker that knows each task's worked solution (a `reference` column in the pairs)
    python -m tinyalign.judge traces --from-reference --pairs runs/judge_pairs/train.jsonl --out runs/judge_traces.jsonl
    python -m tinyalign.sft recipes/tiny_judge_sft.yaml          # SFT on the kept judgements
    # (b) RL with a verifiable reward: GRPO, reward 1 when the verdict names the side people chose
    python -m tinyalign.judge verdicts --pairs runs/judge_pairs/train.jsonl --out runs/judge_verdicts.jsonl
    #     or only the pairs the distilled judge still gets wrong: --judge runs/tiny_judge_sft
    python -m tinyalign.grpo recipes/tiny_judge_grpo.yaml
    # agreement with people on the held-out votes, position bias, unparsed rate; a scalar RM alongside
    python -m tinyalign.judge eval --judge runs/tiny_judge_grpo --pairs runs/judge_pairs/test.jsonl --rm runs/tiny_rm

--pairs is a vote store (the pairs the DPO export makes) or a pairs JSONL, used whole. The judge
whose judgements `traces` samples may be a stronger model than the one being trained (distillation
from a teacher). A reward model trained on the same split (data.source: runs/judge_pairs) is
compared on the same held-out votes.
"""

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli, positive_int
from tinyalign.data.loading import text_of
from tinyalign.data.messages import task_text
from tinyalign.measure.pair_files import HELD_OUT, read_pair_rows, read_pairs, split_pairs
from tinyalign.rewards.accuracy import math_equal, model_answer
from tinyalign.rewards.judge_model import check_judge
from tinyalign.rewards.pairwise import (
    PairJudge,
    agreement_with_votes,
    head,
    opening,
    pair_messages,
    parse_verdict,
    solve_messages,
)

TRACE_COLUMNS = {"judge_prompt", "judgement"}
VERDICT_COLUMNS = {"judge_prompt", "judge_start", "verdict"}


def traces(judge: PairJudge, pairs, k: int) -> tuple[list[dict], dict]:
    """(a) SFT rows from the judge's own judgements that agree with the vote, in both orders.

    A judgement the judge did not write in the form is kept as it was redone, guided (PairJudge):
    its verdict is still the judge's own.
    """
    asks, wanted = [], []
    for task, chosen, rejected in pairs:
        asks += [(task, chosen, rejected), (task, rejected, chosen)]
        wanted += ["A", "B"]
    rows, seen, unparsed = [], set(), 0
    for pair, verdict, judged in zip(asks, wanted, judge.judgements(asks, k=k, desc="judgements")):
        for text, wrote in judged:
            unparsed += not wrote
            if parse_verdict(text) == verdict and (pair, text) not in seen:
                seen.add((pair, text))
                rows.append({"judge_prompt": pair_messages(*pair)[0]["content"], "judgement": text})
    sampled = len(asks) * k
    return rows, {"pairs": len(pairs), "sampled": sampled, "kept": len(rows), "unparsed": unparsed / max(1, sampled)}


def reference_judgement(solution: str, a: str, b: str) -> str | None:
    """A judgement in the judge's form by a checker that knows the task's worked solution (privileged
    information, the teacher RM-R1 distils from): the solution as its SOLUTION, each answer's final number
    checked against the solution's. None when the final numbers do not tell A from B.

    The right answer's check ends "right, so A", so the verdict repeats a letter the judgement has just written
    (a small judge checks both answers right and still misses the step to the verdict); only final numbers are
    checked, as longer traces that redo every step distil worse (bench/RESULTS.md, "On sums: the verdict
    repeats the evaluation, and the judge learns")."""
    gold = model_answer(solution)
    right = [math_equal(model_answer(answer), gold) for answer in (a, b)]
    if right[0] == right[1]:
        return None
    checks = [f"{side} ends in {model_answer(answer) or 'no number'}, {f'right, so {side}' if ok else 'wrong'}"
              for side, answer, ok in zip("AB", (a, b), right)]
    return (f"TYPE: reasoning\nSOLUTION: {solution}\nEVALUATION: {'; '.join(checks)}.\n"
            f"VERDICT: [[{'A' if right[0] else 'B'}]]")


def reference_traces(rows) -> list[dict]:
    """(a) SFT rows written by the checker from each pair's `reference` (a worked solution), in both orders,
    and once per task the solution alone, as the reply to the task alone (what a solve-first judge is asked).

    A pair whose final numbers do not single out the voted answer (both right, both wrong, or the vote
    against the solution) is left out: the judge learns no verdict the checker cannot justify. None left: []."""
    out, solutions = [], {}
    for row in rows:
        task, chosen, rejected = task_text(row["prompt"]), text_of(row["chosen"]), text_of(row["rejected"])
        solutions.setdefault(task, str(row["reference"]))
        for a, b, voted in ((chosen, rejected, "A"), (rejected, chosen, "B")):
            text = reference_judgement(str(row["reference"]), a, b)
            if text is not None and parse_verdict(text) == voted:
                out.append({"judge_prompt": pair_messages(task, a, b)[0]["content"], "judgement": text})
    if not out:  # no verdict to teach: nothing for a judge to learn
        return []
    return out + [{"judge_prompt": solve_messages(task)[0]["content"], "judgement": head("reasoning", solution).rstrip()}
                  for task, solution in solutions.items()]


def reference_rows(path) -> list[dict]:
    """The pairs of --pairs, each with the `reference` solution the checker writes from."""
    rows = read_pair_rows(path)
    missing = next((i for i, row in enumerate(rows, 1) if not str(row.get("reference") or "").strip()), None)
    if missing is not None:
        raise UserError(f"--pairs {path}: pair {missing} has no reference; --from-reference needs a worked "
                        "solution in each pair's `reference` column")
    return rows


def verdict_rows(pairs, heads: "dict[str, str] | None" = None) -> list[dict]:
    """(b) GRPO rows: the judge prompt in both orders, with the side people chose. `heads`: a solve-first
    judge's TYPE and SOLUTION lines for each task (PairJudge.heads), which open the reply it continues
    (`judge_start`, the recipes' data.reply_start), as GRPO's reward asks it; else the reply starts empty."""
    rows = []
    for task, chosen, rejected in pairs:
        start = opening(heads[task]) if heads else ""
        rows.append({"judge_prompt": pair_messages(task, chosen, rejected)[0]["content"], "judge_start": start,
                     "verdict": "A"})
        rows.append({"judge_prompt": pair_messages(task, rejected, chosen)[0]["content"], "judge_start": start,
                     "verdict": "B"})
    return rows


def misjudged(judge: PairJudge, pairs) -> list:
    """The voted pairs `judge` does not already get right in both orders (greedily): wrong, or naming one
    position both times. A distilled judge writes nearly the same judgement whenever it is sampled, so on a
    pair it gets right all of GRPO's judgements score alike and teach nothing (bench/RESULTS.md, "On sums").
    Both orders of each pair stay in the data, so either position is as often the right one. Online
    difficulty filtering (DAPO, prime-rl), done once, offline."""
    outcomes = judge.compare(pairs, desc="judging the training pairs")
    return [pair for pair, outcome in zip(pairs, outcomes) if outcome["winner"] != "x"]


def evaluate(judge: "str | PairJudge", pairs, rm: str | None = None, max_new_tokens: int = 256,
             batch_size: int = 16, solve_first: bool = False) -> dict:
    """Agreement with the votes, ties, position bias and unparsed rate; the scalar RM's accuracy alongside.

    `judge`: a model or judge run, or a PairJudge already made (its model loads once, however often asked)."""
    report = agreement_with_votes(judge, pairs, max_new_tokens, batch_size, solve_first)
    if rm:
        from tinyalign.measure import reward_model as rm_measure
        from tinyalign.models import reward_model as rm_load

        scorer, tokenizer = rm_load.load_for_scoring(rm)
        rows = [{"prompt": t, "chosen": c, "rejected": r} for t, c, r in pairs]
        report["rm_agreement"] = rm_measure.measure(scorer, tokenizer, rows)["accuracy"]
    return report


def summary(report: dict) -> str:
    line = (f"judge agrees with people on {report['agreement']:.1%} of {report['pairs']} held-out pairs "
            f"(ties {report['ties']:.1%}, position bias {report['position_bias']:.1%}, "
            f"unparsed {report['unparsed']:.1%})")
    return line + (f"; scalar RM {report['rm_agreement']:.1%}" if "rm_agreement" in report else "")


def check_models(args) -> None:
    """Name a missing --judge or --rm folder now, not after minutes of judging."""
    from tinyalign.models.reward_model import is_reward_model

    judge = getattr(args, "judge", None)
    if judge:
        check_judge(judge)
    rm = getattr(args, "rm", None)
    if rm and not is_reward_model(rm):
        raise UserError(f"--rm {rm} is not a reward-model run; train one with python -m tinyalign.rm RECIPE")


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.judge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pairs = ArgumentParser(add_help=False)
    pairs.add_argument("--pairs", required=True, help="a vote store (.sqlite) or a pairs .jsonl")
    split = commands.add_parser("split", help="the pairs of a vote store into train.jsonl and test.jsonl")
    split.add_argument("--pairs", required=True, help="a vote store (.sqlite)")
    split.add_argument("--out", required=True, help="folder for train.jsonl and test.jsonl")
    split.add_argument("--held-out", type=float, default=HELD_OUT, help="share of the pairs in test.jsonl")
    split.add_argument("--seed", type=int, default=0)
    sample = commands.add_parser("traces", parents=[pairs], help="(a) judgements that agree with the votes, for SFT")
    teacher = sample.add_mutually_exclusive_group(required=True)
    teacher.add_argument("--judge", help="the model (or run directory) whose judgements are sampled")
    teacher.add_argument("--from-reference", action="store_true",
                         help="written by a checker from each pair's `reference` solution, not sampled")
    sample.add_argument("--k", type=positive_int, default=4, help="judgements sampled per pair and order")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--out", required=True, help="SFT data, e.g. runs/judge_traces.jsonl")
    rl = commands.add_parser("verdicts", parents=[pairs], help="(b) judge prompts with the held vote, for GRPO")
    rl.add_argument("--out", required=True, help="GRPO data, e.g. runs/judge_verdicts.jsonl")
    rl.add_argument("--judge", help="keep only the pairs this judge (e.g. the distilled one) does not already get "
                                    "right in both orders")
    rl.add_argument("--solve-first", action="store_true",
                    help="with --judge: the judge solves each task first, and each prompt opens its reply with that "
                         "solution, as GRPO's solve_first reward asks it")
    score = commands.add_parser("eval", parents=[pairs], help="agreement with held-out votes")
    score.add_argument("--judge", required=True, help="a model or judge run directory")
    score.add_argument("--rm", help="a reward-model run to score on the same pairs")
    score.add_argument("--solve-first", action="store_true",
                       help="the judge solves each task before it reads the answers, as GRPO's solve_first reward asks")
    for command in (sample, score, rl):
        command.add_argument("--max-new-tokens", type=positive_int, default=256)
        command.add_argument("--batch-size", type=positive_int, default=16, help="judgements generated at once")
    args = parser.parse_args(argv)
    check_models(args)

    if args.command == "split":
        if not 0.0 < args.held_out < 1.0:
            raise UserError(f"--held-out must be between 0 and 1, got {args.held_out}")
        sizes = split_pairs(args.pairs, args.out, args.held_out, args.seed)
        print(f"{sizes['train']} pairs to train on, {sizes['test']} held out -> {args.out}/train.jsonl, test.jsonl")
    elif args.command == "traces":
        out = files.check_jsonl_out(args.out, columns=TRACE_COLUMNS, inputs=[args.pairs])
        if args.from_reference:
            pairs = reference_rows(args.pairs)
            rows = reference_traces(pairs)
            judged = sum(parse_verdict(row["judgement"]) is not None for row in rows)
            empty = (f"--pairs {args.pairs}: in none of {len(pairs)} pairs does the reference's final number "
                     "single out the voted answer")
            done = (f"wrote {judged} judgements (both orders) on the {judged // 2} of {len(pairs)} voted pairs whose "
                    f"final numbers single out the voted answer, and {len(rows) - judged} solutions to their tasks alone")
        else:
            if args.temperature <= 0:
                raise UserError("--temperature must be above 0: rejection sampling needs varied judgements")
            judge = PairJudge(args.judge, args.max_new_tokens, args.batch_size, args.temperature)
            rows, stats = traces(judge, read_pairs(args.pairs), args.k)
            empty = (f"none of {stats['sampled']} judgements agreed with the votes; sample from a stronger model "
                     "with --judge, or raise --k")
            done = (f"kept {stats['kept']} of {stats['sampled']} judgements ({stats['kept'] / stats['sampled']:.1%}) "
                    f"on {stats['pairs']} voted pairs; unparsed {stats['unparsed']:.1%}")
        if not rows:
            raise UserError(empty)
        files.write_jsonl(out, rows)
        print(f"{done} -> {out}")
    elif args.command == "verdicts":
        out = files.check_jsonl_out(args.out, columns=VERDICT_COLUMNS, inputs=[args.pairs])
        if args.solve_first and not args.judge:
            raise UserError("--solve-first opens each prompt with a judge's own solution: name the judge with --judge")
        pairs = read_pairs(args.pairs)
        judge = args.judge and PairJudge(args.judge, args.max_new_tokens, args.batch_size, solve_first=args.solve_first)
        kept = misjudged(judge, pairs) if judge else pairs
        if not kept:
            raise UserError(f"--judge {args.judge} already agrees with every vote in --pairs, in both orders: "
                            "RL on them has nothing to correct")
        rows = verdict_rows(kept, judge.heads([task for task, _, _ in kept]) if args.solve_first else None)
        files.write_jsonl(out, rows)
        which = f" the judge gets wrong, of {len(pairs)}" if args.judge else ""
        print(f"wrote {len(rows)} judge prompts (both orders of {len(kept)} voted pairs{which}) -> {out}")
    else:
        print(summary(evaluate(args.judge, read_pairs(args.pairs), args.rm, args.max_new_tokens, args.batch_size,
                               args.solve_first)))
    return 0


if __name__ == "__main__":
    main()
