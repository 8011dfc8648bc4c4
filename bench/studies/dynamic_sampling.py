"""Flat groups kept vs dropped (`flat_groups: keep | drop`): two GRPO runs from the same SFT adapter, same
seed, same wall-clock budget; then held-out greedy accuracy of both.

    python -m bench.studies.dynamic_sampling --adapter runs/demo-real/sft --seconds 420 [--record FILE]

A group whose 8 answers all score the same has advantages of 0 and teaches nothing; `drop` skips its
log-prob passes and its forward/backward (tinyalign/trl_patches/flat_groups.py), so in the same budget it should
get through more steps. Each run is its own process (OMP_NUM_THREADS=--threads) calling `bench.harness.train` with a
callback that stops training once --seconds of training have passed (the final adapter is saved as usual);
a third process scores the start adapter and both runs with `tinyalign.measure.solve_rate.held_out_accuracy`.

The real run: the real-model demo's GRPO settings (recipes/smollm2_word_grpo.yaml: SmolLM2-135M-Instruct,
LoRA r 16, tiny:word-problems, reward math_accuracy, 8 problems x 8 answers per step), 200 held-out
problems. --adapter is the SFT adapter both runs start from (the demo's: runs/demo-real/sft).

    python -m bench.studies.dynamic_sampling --smoke      # the harness on the tiny model and tiny:addition, ~1-2 min

--smoke trains the tiny SFT adapter first when --adapter is not given. Each run's console goes to
WORK/<run>.log (WORK: --work, else a temporary folder). Prints the table and writes the run's record
(bench/harness.py; a smoke run's goes to runs/bench_smoke/).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import harness

MODES = ("keep", "drop")


def real_settings() -> dict:
    """The real-model demo's GRPO recipe (recipes/smollm2_word_grpo.yaml): model, task, reward and step shape."""
    import yaml

    from tinyalign.config import recipe as recipes

    raw = yaml.safe_load(recipes.builtin("smollm2_word_grpo.yaml").read_text())
    train = {k: v for k, v in raw["train"].items() if k not in ("max_steps", "save_steps", "logging_steps")}
    model = {k: v for k, v in raw["model"].items() if k != "adapter"}
    return {"model": model, "data": raw["data"], "rewards": raw["rewards"], "train": train,
            "generation": raw["generation"]}


SMOKE = {
    "model": {"name": "tiny:qwen2-1m", "quantization": "4bit"},
    "data": {"source": "tiny:addition", "test_split": "test", "prompt": "{question}", "answer": "{answer}"},
    "rewards": [{"name": "exact_match", "weight": 1.0}],
    "train": {"learning_rate": 1e-4, "lr_scheduler_type": "constant", "warmup_steps": 0, "num_generations": 8,
              "per_device_train_batch_size": 64, "gradient_accumulation_steps": 1, "max_completion_length": 16},
    "generation": {"max_new_tokens": 16},
}
COMMON_TRAIN = {"max_steps": 100_000, "logging_steps": 1, "save_strategy": "no"}  # the budget ends the run


def write_recipe(folder: Path, settings: dict, adapter: str, mode: str, seed: int) -> Path:
    import yaml

    recipe = {"method": "grpo", **settings, "train": {**settings["train"], **COMMON_TRAIN}, "seed": seed,
              "probe": False, "flat_groups": mode, "output_dir": str(folder / mode), "overwrite": True}
    recipe["model"] = {**settings["model"], "adapter": adapter}
    path = folder / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def train_one(recipe: Path, seconds: float) -> dict:
    """GRPO until `seconds` of training have passed, in this process; what the log says about it."""
    from transformers import TrainerCallback

    from tinyalign.training import run

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.start >= seconds:
                control.should_training_stop = True  # the Trainer stops; the run saves its final adapter

    callbacks = run.callbacks
    run.callbacks = lambda recipe: [*callbacks(recipe), Budget()]
    start = time.perf_counter()
    out = harness.train("grpo", recipe)
    wall = time.perf_counter() - start
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    steps = [e for e in log if "reward" in e]
    return {"steps": len(steps), "wall_s": wall, "train_s": next((e["train_runtime"] for e in log
                                                                   if "train_runtime" in e), None),
            "flat_share": mean_of(steps, "frac_reward_zero_std"), "dropped_share": mean_of(steps, "flat_groups_dropped"),
            "reward_first": mean_of(steps[:5], "reward"), "reward_last": mean_of(steps[-5:], "reward")}


def mean_of(entries, key):
    values = [e[key] for e in entries if key in e]
    return sum(values) / len(values) if values else None


def score(recipe: Path, adapters: dict, held_out: int) -> dict:
    from tinyalign.measure.solve_rate import held_out_accuracy

    return held_out_accuracy(str(recipe), adapters, limit=held_out)


def child(args: list, threads: int, log: Path) -> dict:
    """Run this script's --child mode in its own process; its console goes to `log`, its result is the last line."""
    with open(log, "w") as f:
        proc = subprocess.run(harness.module_command("bench.studies.dynamic_sampling", *args),
                              env=harness.child_env(threads), stdout=f, stderr=subprocess.STDOUT)
    last = log.read_text().strip().splitlines()[-1:] or [""]
    if proc.returncode != 0 or not last[0].startswith("RESULT "):
        sys.exit(f"{' '.join(args[:3])} failed (exit {proc.returncode}); its console is in {log}")
    return json.loads(last[0][len("RESULT "):])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.dynamic_sampling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", help="the SFT adapter (run directory) both runs start from")
    parser.add_argument("--seconds", type=float, help="training budget per run (default 420; --smoke 20)")
    parser.add_argument("--held-out", type=int, help="held-out problems scored (default 200; --smoke 100)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run (default 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny model and tiny:addition, to check the harness")
    parser.add_argument("--work", help="keep the runs here (default: a temporary folder)")
    harness.add_record_arg(parser)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # train RECIPE SECONDS | score RECIPE N JSON
    args = parser.parse_args(argv)

    if args.child:
        kind, recipe, *rest = args.child
        result = (train_one(Path(recipe), float(rest[0])) if kind == "train"
                  else score(Path(recipe), json.loads(rest[1]), int(rest[0])))
        print("RESULT " + json.dumps(result), flush=True)
        return

    settings = SMOKE if args.smoke else real_settings()
    seconds = args.seconds or (20 if args.smoke else 420)
    held_out = args.held_out or (100 if args.smoke else 200)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        adapter = args.adapter
        if adapter is None and args.smoke:  # the tiny SFT start, as tests and the demo use
            from tinyalign.config.recipe import builtin

            adapter = str(harness.train_process("sft", builtin("tiny_sft.yaml"), [f"output_dir={work / 'sft'}",
                                                "overwrite=true"], args.threads, work / "sft.log", "the tiny SFT start"))
        if adapter is None:
            sys.exit("--adapter: give the SFT adapter (run directory) both runs start from")
        adapter = str(Path(adapter).resolve())

        runs = {}
        for mode in MODES:  # one at a time: each gets the machine to itself
            recipe = write_recipe(work, settings, adapter, mode, args.seed)
            runs[mode] = child(["--child", "train", str(recipe), str(seconds)], args.threads, work / f"{mode}.log")
            print(f"{mode}: {runs[mode]['steps']} steps in {runs[mode]['train_s']:.0f} s", flush=True)
        adapters = {"start": adapter, **{mode: str(work / mode) for mode in MODES}}
        accuracy = child(["--child", "score", str(work / "keep.yaml"), str(held_out), json.dumps(adapters)],
                         args.threads, work / "score.log")

    results = {"settings": settings, "seconds": seconds, "held_out": held_out, "seed": args.seed,
               "threads": args.threads, "runs": runs, "accuracy": accuracy}

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    print(f"\nheld-out greedy accuracy ({held_out} problems): base {accuracy['base']:.3f}, "
          f"start adapter {accuracy['start']:.3f}; budget {seconds:.0f} s of training per run, seed {args.seed}\n")
    rows = []
    for mode, r in runs.items():
        per_step = r["train_s"] / r["steps"] if r["steps"] and r["train_s"] else None
        rows.append((mode, r["steps"], fmt(per_step, ".2f"), fmt(r["flat_share"], ".2f"), fmt(r["dropped_share"], ".2f"),
                     f"{fmt(r['reward_first'], '.2f')} -> {fmt(r['reward_last'], '.2f')}", f"{accuracy[mode]:.3f}"))
    print(harness.table(rows, ["flat groups", "steps", "s/step", "flat share", "dropped", "reward first 5 -> last 5",
                               "held-out accuracy"], align="lrrrrlr"))
    harness.record("dynamic_sampling", results, args.record, smoke=args.smoke)

if __name__ == "__main__":
    main()
