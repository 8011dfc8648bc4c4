"""The tiny reward model's held-out accuracy over seeds and torch thread counts: the spread behind every
figure tiny_rm.yaml's header and tests/test_rm.py state.

    python -m bench.studies.rm_spread [--seeds 0 1 2 3 4] [--threads 1 2] [--prompts 1500] [--held-out 0.25]
                              [--out runs/rm_spread] [--from-policy] [--dpo] [--record FILE]
                              [rm overrides: model.lora.r=32 ...]

Per thread count, the policy whose answers are voted on (`--start`):
  young   tiny_sft.yaml with a cosine decay, which stalls part-way (35-71 % exact match, by CPU); its
          mistakes include many wrong sums, so the RM must redo sums: the hard case;
  mixed   tiny_sft_mixed.yaml, the loop's start (tests/test_rm.py): 70 % wordy answers, few wrong sums.
Per seed: that policy answers `--prompts` training prompts twice, the oracle annotator
votes through the vote store, whole prompts are held out (`--held-out` of the pairs; ~260 pairs from
1500 prompts), tiny_rm.yaml trains on the rest and is measured on them. With --dpo, DPO (tiny_dpo.yaml,
continuing the voted policy) trains on the same pairs too, and its implicit reward and its own likelihood
are measured on the same held-out pairs (`python -m tinyalign.dpo` reports both). Each (threads, seed) is its own
subprocess, one at a time. Prints a row per run and min / median / max; appends the rows as JSON lines
to OUT/results.jsonl, and writes the run's record (bench/harness.py) to --record.
"""

import argparse
import json
from pathlib import Path
from statistics import median

from bench import harness

STARTS = {"young": ("tiny_sft.yaml", ["train.lr_scheduler_type=cosine"]), "mixed": ("tiny_sft_mixed.yaml", [])}


def one_run(start: str, threads: int, seed: int, prompts: int, held_out: float, out: Path,
            overrides: list[str], from_policy: bool = False, with_dpo: bool = False) -> dict:
    harness.threads(threads)
    from tinyalign.config.recipe import builtin
    from tinyalign.experiments import annotators
    from tinyalign.measure.pair_files import split_pairs

    policy = out / f"{start}_T{threads}"
    if not (policy / "adapter_config.json").is_file():
        recipe, settings = STARTS[start]
        harness.train("sft", builtin(recipe), [*settings, f"output_dir={policy}", "overwrite=true"])
    name = f"{start}_T{threads}_S{seed}_P{prompts}"
    db = out / f"votes_{name}.sqlite"
    if not db.exists():
        annotators.annotate(db, {"sft": str(policy)}, prompts, seed)
    pairs = split_pairs(db, out / f"pairs_{name}", held_out=held_out, seed=seed)
    if from_policy:  # the reward model starts from the policy whose answers were voted on
        overrides = [f"model.policy={policy}", *overrides]
    run = out / f"rm_{name}{'_from_policy' if from_policy else ''}"
    harness.train("rm", builtin("tiny_rm.yaml"), [f"data.source={out / f'pairs_{name}'}", "data.split=train",
                                                  "data.test_split=test", f"seed={seed}", f"output_dir={run}",
                                                  "overwrite=true", *overrides])
    metrics = json.loads((run / "rm_metrics.json").read_text())
    row = {"start": start, "threads": threads, "seed": seed, "prompts": prompts, "train_pairs": pairs["train"],
           "test_pairs": pairs["test"], "accuracy": round(metrics["accuracy"], 4),
           "length_bias": metrics["length_bias"], "from_policy": from_policy, "overrides": overrides}
    if with_dpo:  # the same pairs, the same held-out ones; the reward read from the language model
        run = out / f"dpo_{name}"
        harness.train("dpo", builtin("tiny_dpo.yaml"), [
            "model.quantization=none", f"model.adapter={policy}", f"data.source={out / f'pairs_{name}'}",
            "data.split=train", "data.test_split=test", "data.limit=null", "data.prompt=null", "data.chosen=null",
            "data.rejected=null", f"seed={seed}", f"output_dir={run}", "overwrite=true"])
        metrics = json.loads((run / "dpo_metrics.json").read_text())
        row |= {"dpo_accuracy": round(metrics["accuracy"], 4),
                "dpo_likelihood_accuracy": round(metrics["likelihood_accuracy"], 4)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.rm_spread", description=__doc__.splitlines()[0])
    parser.add_argument("--start", choices=sorted(STARTS), default="young")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompts", type=int, default=1500)
    parser.add_argument("--held-out", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=Path("runs/rm_spread"))
    parser.add_argument("--from-policy", action="store_true", help="start each reward model from the voted policy")
    parser.add_argument("--dpo", action="store_true", help="DPO on the same pairs too, measured the same way")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # (threads, seed): in the child
    harness.add_record_arg(parser)
    args, overrides = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        row = one_run(args.start, *args.one, args.prompts, args.held_out, args.out, overrides, args.from_policy,
                      args.dpo)
        with open(args.out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return
    rows = []
    for threads in args.threads:
        for seed in args.seeds:
            log = args.out / f"log_{args.start}_T{threads}_S{seed}.txt"  # the training consoles, kept off the table
            harness.run_logged(harness.module_command(
                "bench.studies.rm_spread", "--one", threads, seed, "--start", args.start, "--prompts", args.prompts,
                "--held-out", args.held_out, "--out", args.out, *(["--from-policy"] if args.from_policy else []),
                *(["--dpo"] if args.dpo else []), *overrides), threads, log, f"threads {threads} seed {seed}")
            row = json.loads((args.out / "results.jsonl").read_text().splitlines()[-1])  # the child's row
            rows.append(row)
            dpo = (f"; DPO's implicit reward {row['dpo_accuracy']:.1%}, its likelihood "
                   f"{row['dpo_likelihood_accuracy']:.1%}" if args.dpo else "")
            print(f"threads {threads} seed {seed}: {row['accuracy']:.1%} on {row['test_pairs']} held-out pairs "
                  f"({row['train_pairs']} trained on){dpo}", flush=True)
    keys = [k for k in ("accuracy", "dpo_accuracy", "dpo_likelihood_accuracy") if k in rows[0]]
    print()
    print(harness.table([(r["threads"], r["seed"], r["train_pairs"], r["test_pairs"], *(f"{r[k]:.1%}" for k in keys))
                         for r in rows],
                        ["threads", "seed", "train pairs", "held-out pairs",
                         *("reward model", "DPO's implicit reward", "the DPO model's likelihood")[:len(keys)]]))
    spread = {}
    for key, what in (("accuracy", "reward model"), ("dpo_accuracy", "DPO's implicit reward"),
                      ("dpo_likelihood_accuracy", "the DPO model's likelihood")):
        if key in rows[0]:
            accuracy = sorted(r[key] for r in rows)
            spread[key] = {"min": accuracy[0], "median": median(accuracy), "max": accuracy[-1]}
            print(f"{what}, held-out accuracy over {len(rows)} runs: min {accuracy[0]:.1%}, "
                  f"median {median(accuracy):.1%}, max {accuracy[-1]:.1%}")
    harness.record("rm_spread", {"start": args.start, "prompts": args.prompts, "held_out": args.held_out,
                                 "overrides": overrides, "runs": rows, "spread": spread}, args.record)

if __name__ == "__main__":
    main()
