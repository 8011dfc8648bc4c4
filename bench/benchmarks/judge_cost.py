"""A solve-first pairwise judge's seconds at a GRPO step's shape, its prompts' shared opening prefilled once
(tinyalign.models.generate.prefilled) against every prompt prefilled in full, side by side, interleaved.

    python -m bench.benchmarks.judge_cost                   # ~5 min on 2 cores: the sums judge, 18 pairs a step
    options: [--judge runs/sumjudge2/judge_T2_S0] [--pairs-file runs/sumjudge2/pairs/test.jsonl] [--pairs 18]
             [--repeats 3] [--threads 2] [--max-new-tokens 40] [--record FILE]

A step of `bench.studies.judge_grpo` judged 14-20 distinct pairs, both orders, in one batch of 64: `--pairs`
held-out pairs stand in for them. Each repeat judges the same pairs both ways with a fresh judge (so every task
is solved again), the model loaded once. Prints the median seconds of each way and their ratio, and how many of
the judgements the two ways wrote alike (greedy; bf16 rounding may part them).
"""

import argparse
import statistics
import time
from pathlib import Path

from bench import harness


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.judge_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", type=Path, default=Path("runs/sumjudge2/judge_T2_S0"))
    parser.add_argument("--pairs-file", type=Path, default=Path("runs/sumjudge2/pairs/test.jsonl"))
    parser.add_argument("--pairs", type=int, default=18, help="distinct pairs of one GRPO step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=40, help="as bench.studies.judge_grpo's sums judge")
    harness.add_record_arg(parser)
    args = parser.parse_args()
    harness.threads(args.threads)
    for need in (args.judge, args.pairs_file):
        if not need.exists():
            raise SystemExit(f"{need} not found; make it with python -m bench.studies.sums_judge (see its docstring)")
    from tinyalign.measure.pair_files import read_pairs
    from tinyalign.models import generate
    from tinyalign.rewards.pairwise import PairJudge

    pairs = read_pairs(args.pairs_file)[:args.pairs]
    shared_at = generate.SHARED_PREFIX
    ways = {"shared opening prefilled once": shared_at, "every prompt prefilled in full": 10 ** 9}
    seconds = {way: [] for way in ways}
    written = {}
    PairJudge(str(args.judge)).load()  # loaded once, outside the timings
    for _ in range(args.repeats):
        for way, threshold in ways.items():
            generate.SHARED_PREFIX = threshold
            judge = PairJudge(str(args.judge), args.max_new_tokens, batch_size=64, solve_first=True)
            start = time.perf_counter()
            outcomes = judge.compare(pairs)
            seconds[way].append(time.perf_counter() - start)
            written[way] = [o["judgements"] for o in outcomes]
    generate.SHARED_PREFIX = shared_at
    medians = {way: statistics.median(s) for way, s in seconds.items()}
    shared, full = medians.values()
    alike = sum(a == b for a, b in zip(*written.values()))
    print(harness.table([(way, f"{medians[way]:.2f}", " ".join(f"{s:.2f}" for s in seconds[way])) for way in ways],
                        ["judge", "median (s)", "each repeat (s)"]))
    print(f"\n{len(pairs)} pairs, both orders, solving first; shared / full = {shared / full:.2f}; "
          f"{alike} of {len(pairs)} pairs judged alike both ways")
    figures = {"judge": str(args.judge), "pairs": len(pairs), "threads": args.threads, "seconds": seconds,
               "median_s": medians, "ratio": shared / full, "pairs_alike": alike}
    print(f"wrote {harness.record('judge_cost', figures, args.record)}")


if __name__ == "__main__":
    main()
