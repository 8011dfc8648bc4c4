"""The pairwise judge on the task where SmolLM2's scalar reward model holds: two-digit sums.

    python -m bench.studies.sums_judge --seeds 0 1 --threads 2      # a judge: ~13 min on 2 Intel cores (9 to train, 4 to judge), ~24 on AMD
    python -m bench.studies.sums_judge --seeds 0 --threads 2 --solve-first   # judged solving each task first
    python -m bench.studies.sums_judge --seeds 0 --threads 2 --rl   # then step (b) on each distilled judge (+~20 min on AMD)
    python -m bench.studies.sums_judge --seeds 0 --threads 2 --rl --hard   # on the pairs it gets wrong only (+16 min to find them)
    options for step (b): [--rl-lr 1e-4] [--rl-seed 1] [--rl-steps 20]
    options: [--votes runs/loop-sft/s0b/votes-r1.sqlite] [--work runs/sumjudge] [--record FILE] [judge SFT overrides ...]

The votes are a sums loop's round 1 (600 votes by the annotator rule on the SFT start's answers), made on
their own in ~2 min with

    python -m tinyalign.sft recipes/smollm2_sums_sft.yaml output_dir=runs/rft/sft15
    python -m tinyalign.loop votes --task smollm2-sums --policy sft=runs/rft/sft15 --db runs/loop-sft/s0b/votes-r1.sqlite

and split as the sums RM's spread was (30 % of the prompts held out, seed 0: 560 training pairs, 241 held
out), each pair given the sum as its `reference` ("45 + 15 = 60"). The checker writes the judge's training
judgements from it (`python -m tinyalign.judge traces --from-reference`, both orders),
`recipes/smollm2_judge_sft.yaml` distils them into SmolLM2 (140 steps of 8, one epoch), and the held-out pairs are judged in both orders, greedily: agreement with the vote,
position bias, unparsed rate (the figures of `python -m tinyalign.judge eval`). With --rl, each distilled
judge then takes GRPO steps (`recipes/smollm2_judge_grpo.yaml`, RM-R1's step (b)) on the training pairs in
both orders (`python -m tinyalign.judge verdicts`), reward 1 when its verdict names the voted answer, and is
judged the same way; with --hard, only on the training pairs the distilled judge does not already get right in
both orders (`judge verdicts --judge`: it judges all of them greedily first). Each stage is cached in --work;
prints a Markdown table, writes WORK/results.json and the run's record (bench/harness.py).
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from bench import harness
from bench.studies.real_judge import one_epoch, train, write_results

MAX_NEW_TOKENS = 64  # a sums judgement is ~53 tokens
RL = [f"train.max_completion_length={MAX_NEW_TOKENS}", f"generation.max_new_tokens={MAX_NEW_TOKENS}"]


def pairs(db: Path, folder: Path) -> Path:
    """The split, each pair with its sum as `reference`; cached."""
    from tinyalign.core import files
    from tinyalign.measure.pair_files import split_pairs

    if (folder / "test.jsonl").is_file():
        return folder
    if not db.is_file():
        sys.exit(f"{db} not found; make it first: python -m tinyalign.loop votes --task smollm2-sums "
                 f"--policy sft=runs/rft/sft15 --db {db}")
    split_pairs(db, folder, 0.3, seed=0)
    for name in ("train", "test"):
        path = folder / f"{name}.jsonl"
        rows = []
        for _, row in files.read_jsonl(path):
            a, b = map(int, re.search(r"(\d+)\s*\+\s*(\d+)", row["prompt"][-1]["content"]).groups())
            rows.append({**row, "reference": f"{a} + {b} = {a + b}"})
        files.write_jsonl(path, rows)
    return folder


def judged(judge: Path, test: Path, solve_first: bool) -> dict:
    """`python -m tinyalign.judge eval [--solve-first]`'s figures on the held-out pairs, cached beside the judge."""
    out = judge / ("bench_eval_solve_first.json" if solve_first else "bench_eval.json")
    if out.is_file():
        return json.loads(out.read_text())
    from tinyalign import judge as judging
    from tinyalign.measure.pair_files import read_pairs

    start = time.perf_counter()
    report = {**judging.evaluate(str(judge), read_pairs(test), max_new_tokens=MAX_NEW_TOKENS, solve_first=solve_first),
              "judge_s": time.perf_counter() - start}
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def hard_verdicts(judge: Path, train_pairs: Path) -> Path:
    """`python -m tinyalign.judge verdicts --judge JUDGE`: both orders of the training pairs the judge does not
    already get right (greedy, in both orders); cached beside the judge."""
    out = judge / "verdicts_hard.jsonl"
    if not out.is_file():
        from tinyalign import judge as judging

        judging.main(["verdicts", "--pairs", str(train_pairs), "--judge", str(judge), "--out", str(out),
                      "--max-new-tokens", str(MAX_NEW_TOKENS)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.sums_judge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and judging")
    parser.add_argument("--votes", type=Path, default=Path("runs/loop-sft/s0b/votes-r1.sqlite"))
    parser.add_argument("--work", type=Path, default=Path("runs/sumjudge"))
    parser.add_argument("--rl", action="store_true", help="then GRPO on each distilled judge (step b)")
    parser.add_argument("--hard", action="store_true", help="RL on the training pairs the distilled judge gets wrong")
    parser.add_argument("--rl-seed", type=int, help="the GRPO seed (default: the distilled judge's)")
    parser.add_argument("--rl-lr", type=float, help="the GRPO learning rate (default: the recipe's)")
    parser.add_argument("--rl-steps", type=int, default=20, help="GRPO steps of 4 judge prompts x 8 judgements")
    parser.add_argument("--solve-first", action="store_true",
                        help="judge the held-out pairs solving each task before reading the answers")
    harness.add_record_arg(parser)
    args, overrides = parser.parse_known_args()
    harness.threads(args.threads)
    from tinyalign import judge as judging
    from tinyalign.config.recipe import builtin, load
    from tinyalign.core import files

    rl_lr = args.rl_lr or load(builtin("smollm2_judge_grpo.yaml")).train["learning_rate"]

    folder = pairs(args.votes, args.work / "pairs")
    traces = args.work / "traces.jsonl"
    if not traces.is_file():
        files.write_jsonl(traces, judging.reference_traces(judging.reference_rows(folder / "train.jsonl")))
    verdicts = args.work / "verdicts.jsonl"
    if args.rl and not verdicts.is_file():
        files.write_jsonl(verdicts, judging.verdict_rows(judging.read_pairs(folder / "train.jsonl")))
    steps = one_epoch(traces)
    reports = []
    for seed in args.seeds:  # one training process at a time: the box has 2 cores
        sft = train("sft", args.work / f"judge_T{args.threads}_S{seed}", traces, seed, args.threads, [steps, *overrides])
        reports.append({"judge": "distilled", "seed": seed, "train_s": sft["train_s"],
                        **judged(sft["run"], folder / "test.jsonl", args.solve_first)})
        if args.rl:
            rl_seed = seed if args.rl_seed is None else args.rl_seed
            data, name = verdicts, f"judge_T{args.threads}_S{seed}_rl{args.rl_steps}"
            if args.hard:
                data, name = hard_verdicts(sft["run"], folder / "train.jsonl"), f"{name}_hard"
            name += f"_lr{rl_lr:g}" + (f"_s{rl_seed}" if rl_seed != seed else "")  # a cached run names its settings
            rl = train("grpo", args.work / name, data, rl_seed, args.threads,
                       [f"model.adapter={sft['run']}", f"train.max_steps={args.rl_steps}", f"train.learning_rate={rl_lr}",
                        *RL])
            what = f"RL on the pairs it gets wrong, lr {rl_lr:g}" if args.hard else f"RL, lr {rl_lr:g}"
            reports.append({"judge": f"{what}, {args.rl_steps} steps", "seed": rl_seed, "train_s": rl["train_s"],
                            **judged(rl["run"], folder / "test.jsonl", args.solve_first)})

    print(f"\n{reports[0]['pairs']} held-out pairs, each judged in both orders; {args.threads} threads\n")
    print(harness.table([(r["judge"], r["seed"], f"{r['agreement']:.1%}", f"{r['ties']:.1%}", f"{r['position_bias']:.1%}",
                          f"{r['unparsed']:.1%}", f"{r['train_s']:.0f}", f"{r['judge_s']:.0f}") for r in reports],
                        ["judge", "seed", "agreement", "ties", "position bias", "unparsed", "train (s)", "judging (s)"]))
    print(f"\nwrote {write_results(args.work, args.threads, overrides, reports)}")
    harness.record("sums_judge", {"threads": args.threads, "solve_first": args.solve_first, "rl_lr": rl_lr if args.rl else None, "hard": args.hard,
                                  "overrides": overrides, "runs": reports}, args.record)

if __name__ == "__main__":
    main()
