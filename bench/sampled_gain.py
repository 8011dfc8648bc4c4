"""Does GRPO raise the share of right *sampled* answers on held-out problems, where greedy accuracy does not
move? Scores a GRPO run's start and final adapter on the same held-out problems, k samples each, and
gives both paired gains (greedy verdicts; share of right samples per problem) with their 95 % intervals.

    python bench/sampled_gain.py runs/demo-real/grpo [--prompts 300] [--k 4]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a GRPO run directory that continued an adapter (its 'start')")
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--out", help="folder for eval.csv/.md/.png (default: RUN/sampled_gain)")
    args = parser.parse_args()
    from tinyalign.evaluate import SAMPLES_RIGHT, SOLVED, evaluate_run, paired_gain

    out = args.out or str(Path(args.run) / "sampled_gain")
    rows = {r["model"]: r for r in evaluate_run(args.run, "start,final", k=args.k, prompts=args.prompts, out=out)}
    start, final = rows["start"], rows["final"]
    print(f"\n{args.prompts} held-out problems, greedy and {args.k} samples each")
    print(f"greedy accuracy   {start['accuracy']:.1%} -> {final['accuracy']:.1%}: {paired_gain(start, final, SOLVED)}")
    print(f"sampled accuracy  {start['sampled']:.1%} -> {final['sampled']:.1%}: "
          f"{paired_gain(start, final, SAMPLES_RIGHT)}")
    print(f"pass@{args.k}            {start[f'pass@{args.k}']:.1%} -> {final[f'pass@{args.k}']:.1%}")


if __name__ == "__main__":
    main()
