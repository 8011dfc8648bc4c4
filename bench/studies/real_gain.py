"""A real model learning on CPU: held-out greedy accuracy of SmolLM2-135M-Instruct before and after a few
LoRA SFT steps, over seeds and torch thread counts (the spread behind the slow test's threshold).

    python -m bench.studies.real_gain --seeds 0 1 2 --threads 1 2       # [--dtype auto,float32] [--record FILE]

Task: "What is A plus B?" (A 10-59, B 10-39), system "Reply with the number only.", 16 new tokens. The
base rambles before (or instead of) the number and most answers hit the cap. SFT teaches it to answer
with the bare number, on problems that share neither a phrasing nor a number with the held-out ones
(operands 60-99, four other phrasings). Each (seed, threads) run is its own process with
OMP_NUM_THREADS set: SFT through `bench.harness.train` (the method's library entry point), then both the base and the adapter scored by
`tinyalign.measure.solve_rate.held_out_accuracy` under math_accuracy (the last number in the answer, so the
base is not failed for its words alone). The seed draws the training problems and SFT's own seed; the
held-out problems are the same for every run. `--dtype` runs each (seed, threads) at each model.dtype: auto
(bf16 autocast on a CPU with native bf16, tinyalign/models/precision.py) against float32, for the learning to
be compared. Prints the table and writes the run's record (bench/harness.py).
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import harness

PKG = "pkg:smollm2-135m-instruct"
SYSTEM = "Reply with the number only."
HELD_OUT = 100
TRAIN_PHRASINGS = ["Add {a} and {b}.", "What is the sum of {a} and {b}?", "Compute {a} + {b}.",
                   "How much is {a} added to {b}?"]
# settings the slow test uses; the figures in bench/RESULTS.md are for exactly these
TRAIN = {"max_steps": 6, "learning_rate": 1e-3, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
         "warmup_steps": 0, "lr_scheduler_type": "constant", "logging_steps": 1, "save_steps": 6}
TRAIN_ROWS = 48
LORA = {"r": 16, "alpha": 32}


def write_problems(folder: Path, seed: int, train_rows: int = TRAIN_ROWS, held_out: int = HELD_OUT) -> Path:
    """test.jsonl (fixed: "What is A plus B?", A 10-59, B 10-39, distinct pairs) and train.jsonl (seeded:
    other pairs of the same ranges, in four other phrasings): no problem and no phrasing in common."""
    folder.mkdir(parents=True, exist_ok=True)
    fixed = random.Random(1234)
    pairs = fixed.sample([(a, b) for a in range(10, 60) for b in range(10, 40)], held_out)
    test = [{"question": f"What is {a} plus {b}?", "a": a, "b": b, "answer": str(a + b)} for a, b in pairs]
    rest = sorted({(a, b) for a in range(10, 60) for b in range(10, 40)} - set(pairs))
    train = [{"question": TRAIN_PHRASINGS[i % len(TRAIN_PHRASINGS)].format(a=a, b=b), "a": a, "b": b,
              "answer": str(a + b)}
             for i, (a, b) in enumerate(random.Random(seed).sample(rest, train_rows))]
    for name, rows in (("train", train), ("test", test)):
        with open(folder / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    return folder


def write_recipes(folder: Path, problems: Path, seed: int, dtype: str = "auto") -> tuple[Path, Path]:
    """The SFT recipe, and the scoring recipe: the same model and data, math_accuracy as the judge."""
    import yaml

    data = {"source": str(problems), "test_split": "test", "prompt": "{question}", "system": SYSTEM,
            "completion": "{a} + {b} = {answer}", "answer": "{answer}"}
    common = {"model": {"name": PKG, "quantization": "none", "lora": LORA, "dtype": dtype}, "data": data, "seed": seed,
              "generation": {"max_new_tokens": 16}}
    sft = folder / "sft.yaml"
    sft.write_text(yaml.safe_dump({"method": "sft", **common, "train": TRAIN, "output_dir": str(folder / "sft")}))
    score = folder / "score.yaml"
    score.write_text(yaml.safe_dump({"method": "grpo", **common, "rewards": [{"name": "math_accuracy", "weight": 1.0}],
                                     "output_dir": str(folder / "unused")}))
    return sft, score


def one_run(seed: int, folder: Path, dtype: str = "auto") -> dict:
    """SFT then held-out scoring of base and adapter, in this process; times in seconds."""
    from tinyalign.measure import solve_rate

    start = time.perf_counter()
    problems = write_problems(folder / "problems", seed)
    sft_recipe, score_recipe = write_recipes(folder, problems, seed, dtype)
    harness.train("sft", sft_recipe)
    trained = time.perf_counter()
    accuracy = solve_rate.held_out_accuracy(str(score_recipe), {"sft": str(folder / "sft")}, limit=HELD_OUT)
    done = time.perf_counter()
    return {"seed": seed, "dtype": dtype, "base": accuracy["base"], "sft": accuracy["sft"], "gain": accuracy["sft"] - accuracy["base"],
            "train_s": trained - start, "score_s": done - trained, "total_s": done - start}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.real_gain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", default="auto", help="model.dtype per run, a comma list (auto,float32)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single run, in a child process
    harness.add_record_arg(parser)
    args = parser.parse_args(argv)

    if args.one is not None:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(one_run(args.one, Path(tmp), args.dtype)), flush=True)
        return

    results = []
    runs = [(threads, seed, dtype) for threads in args.threads for seed in args.seeds for dtype in args.dtype.split(",")]
    for threads, seed, dtype in runs:  # one run at a time: the box has 2 cores
        wall = time.perf_counter()
        proc = subprocess.run(harness.module_command("bench.studies.real_gain", "--one", seed, "--dtype", dtype),
                              env=harness.child_env(threads), capture_output=True, text=True)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"seed {seed}, {threads} thread(s) failed:\n{proc.stderr[-3000:]}")
        row = {"threads": threads, **json.loads(line[len("RESULT "):]), "wall_s": time.perf_counter() - wall}
        results.append(row)
        print(f"threads {threads} seed {seed} {dtype}: base {row['base']:.2f} -> sft {row['sft']:.2f} "
              f"(gain {row['gain']:+.2f}); train {row['train_s']:.0f} s, score {row['score_s']:.0f} s, "
              f"process {row['wall_s']:.0f} s", flush=True)

    print()
    print(harness.table([(r["threads"], r["seed"], r["dtype"], f"{r['base']:.2f}", f"{r['sft']:.2f}", f"{r['gain']:+.2f}",
                          f"{r['train_s']:.0f}", f"{r['score_s']:.0f}", f"{r['wall_s']:.0f}") for r in results],
                        ["threads", "seed", "model.dtype", "base", "after SFT", "gain", "SFT (s)", "scoring (s)", "process (s)"]))
    spread = {}
    for dtype in args.dtype.split(","):
        gains = [r["gain"] for r in results if r["dtype"] == dtype]
        spread[dtype] = {"min": min(gains), "median": statistics.median(gains), "max": max(gains)}
        print(f"\n{dtype}: gain over {len(gains)} runs: min {min(gains):+.2f}, median {statistics.median(gains):+.2f}, "
              f"max {max(gains):+.2f}")
    harness.record("real_gain", {"runs": results, "gain": spread}, args.record)

if __name__ == "__main__":
    main()
