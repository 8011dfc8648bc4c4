"""DPO on a real model from simulated votes: SmolLM2-135M-Instruct's SFT adapter continued by DPO on
votes over its own answers, and the held-out accuracy of the start and of each DPO run.

    python -m tinyalign.sft recipes/smollm2_word_sft.yaml train.max_steps=30 train.lr_scheduler_type=constant \
        output_dir=runs/demo-real/sft   # the start measured from (~2.5 min)
    python -m bench.studies.real_rm --policy sft=runs/demo-real/sft --seeds 0 --threads 1   # the votes (its stages 1-2)
    python -m bench.studies.real_dpo --seeds 0 1 --threads 2                               # ~12 min a seed on 2 cores
    options: [--start runs/demo-real/sft] [--votes runs/real_rm/votes.sqlite] [--held-out 300]
             [--work runs/real_dpo] [--record FILE] [dpo overrides: train.learning_rate=1e-4 ...]

The votes are the SFT policy's two sampled answers to 700 training word problems, graded by a rule (the
right final number beats a wrong one; two wrong answers are "both bad" with the worked solution as the
edit), through the app's vote store: the pairs DPO reads are the ones the arena's export makes. Per seed:
tinyalign.dpo with recipes/smollm2_word_dpo.yaml (bench.harness.train_process: its own process, OMP_NUM_THREADS
set). Then the
start and every DPO adapter answer the same held-out problems greedily (numbers training never uses),
judged by math_accuracy (smollm2_word_grpo.yaml's reward), the base weights loaded once; each accuracy
with its 95 % Wilson interval. Prints a Markdown table, writes WORK/results.json and the run's record.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from statistics import median

from bench import harness


def train(seed: int, threads: int, start: str, votes: str, work: Path, overrides: list[str]) -> dict:
    """One DPO run in its own process; what its log says at the end."""
    from tinyalign.config.recipe import builtin

    run = work / f"dpo_T{threads}_S{seed}"
    log = work / f"log_T{threads}_S{seed}.txt"  # the training console, kept off the table
    wall = time.perf_counter()
    harness.train_process("dpo", builtin("smollm2_word_dpo.yaml"), [f"seed={seed}", f"model.adapter={start}",
                          f"data.source={votes}", f"output_dir={run}", "overwrite=true", *overrides], threads, log,
                          f"DPO seed {seed}")
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    last = next(e for e in reversed(history) if "rewards/accuracies" in e)
    return {"seed": seed, "threads": threads, "run": str(run), "train_s": history[-1].get("train_runtime"),
            "process_s": time.perf_counter() - wall, "pair_accuracy": last["rewards/accuracies"],
            "margin": last["rewards/margins"], "steps": last.get("step")}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.real_dpo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and scoring")
    parser.add_argument("--start", default="runs/demo-real/sft", help="the SFT adapter the votes were cast on")
    parser.add_argument("--votes", default="runs/real_rm/votes.sqlite", help="the vote store (bench/real_rm.py)")
    parser.add_argument("--held-out", type=int, default=300, help="held-out problems scored (default 300)")
    parser.add_argument("--work", type=Path, default=Path("runs/real_dpo"))
    harness.add_record_arg(parser)
    args, overrides = parser.parse_known_args()
    for path, made_by in ((args.start, "python -m tinyalign.sft recipes/smollm2_word_sft.yaml train.max_steps=30 "
                                        "train.lr_scheduler_type=constant output_dir=..."),
                          (args.votes, "python -m bench.studies.real_rm --policy sft=START")):
        if not Path(path).exists():
            sys.exit(f"{path} not found; make it first: {made_by}")
    args.work.mkdir(parents=True, exist_ok=True)

    runs = []
    for seed in args.seeds:  # one training process at a time: the box has 2 cores
        runs.append(train(seed, args.threads, args.start, args.votes, args.work, overrides))
        r = runs[-1]
        print(f"seed {seed}: {r['steps']} steps in {r['train_s']:.0f} s; last logged pair accuracy "
              f"{r['pair_accuracy']:.0%}, margin {r['margin']:.2f}", flush=True)

    harness.threads(args.threads)
    from tinyalign.config.recipe import builtin
    from tinyalign.measure import solve_rate

    adapters = {"sft": args.start, **{f"dpo_s{r['seed']}": r["run"] for r in runs}}
    start = time.perf_counter()
    accuracy = solve_rate.held_out_accuracy(str(builtin("smollm2_word_grpo.yaml")), adapters, args.held_out,
                                            base=False)
    scoring_s = time.perf_counter() - start

    print(f"\n{args.held_out} held-out word problems, greedy, math_accuracy; {args.threads} torch threads\n")
    rows = []
    for name, share in accuracy.items():
        low, high = solve_rate.interval95(share, args.held_out)
        run = next((r for r in runs if name == f"dpo_s{r['seed']}"), None)
        rows.append((name, f"{share:.1%}", f"{low:.1%}-{high:.1%}", "-" if run is None else f"{share - accuracy['sft']:+.1%}",
                     "-" if run is None else format(run["train_s"], ".0f")))
    print(harness.table(rows, ["model", "held-out accuracy", "95 % interval", "gain over the start", "DPO train (s)"]))
    gains = sorted(accuracy[f"dpo_s{r['seed']}"] - accuracy["sft"] for r in runs)
    print(f"\nDPO gain over {len(gains)} seeds: min {gains[0]:+.1%}, median {median(gains):+.1%}, max {gains[-1]:+.1%}; "
          f"scoring {scoring_s:.0f} s")
    figures = {"start": args.start, "votes": args.votes, "held_out": args.held_out, "threads": args.threads,
               "overrides": overrides, "runs": runs, "accuracy": accuracy, "scoring_s": scoring_s}
    out = args.work / "results.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"wrote {out}")
    harness.record("real_dpo", figures, args.record)


if __name__ == "__main__":
    main()
