"""tinyalign GRPO vs the same GRPO written directly against TRL, side by side on the tiny task.

    python -m bench.benchmarks.grpo_overhead [--steps 30] [--rounds 2] [--adapter runs/bench_sft] [--record FILE]

Both start from the same tiny SFT adapter, with identical GRPOConfig settings, reward and data.
Each run is its own subprocess (so peak RSS is its own), alternating tinyalign / plain TRL to
spread machine noise. Reports seconds per step (from TRL's train_runtime, which excludes loading)
and peak RSS, and the ratios. Target: tinyalign within 2 % of plain TRL. `--steps 2 --rounds 1` is a
smoke run (the harness, not a measurement: its record goes to runs/bench_smoke/).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

from bench import harness
from tinyalign.config.recipe import builtin

ROOT = harness.ROOT

RECIPE = builtin("tiny_grpo.yaml")


def plain_trl(adapter: str, out: str, steps: int) -> None:
    """What a user would write by hand with TRL, bitsandbytes and PEFT: the baseline."""
    import torch
    import yaml
    from datasets import load_dataset
    from peft import PeftModel, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import GRPOConfig, GRPOTrainer

    from tinyalign.models import tiny

    try:
        from tinyalign.data.tasks import task_path
    except ImportError:  # the tiny tasks lived beside the tiny models before
        task_path = tiny.task_path
    recipe = yaml.safe_load(RECIPE.read_text())
    path = tiny.model_path(recipe["model"]["name"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    data = load_dataset("json", data_files=str(task_path("tiny:addition") / "train.jsonl"), split="train")
    data = data.map(lambda r: {"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"]})

    def exact_match(completions, answer, **kwargs):
        return [1.0 if c[0]["content"].strip() == a else 0.0 for c, a in zip(completions, answer)]

    train = {**recipe["train"], "max_steps": steps, "save_strategy": "no", "beta": 0.001, "seed": 42}
    for key, value in bench_defaults().items():
        train.setdefault(key, value)
    config = GRPOConfig(output_dir=out, use_cpu=True, bf16=False, gradient_checkpointing=False, **train)
    trainer = GRPOTrainer(model=model, args=config, train_dataset=data, reward_funcs=[exact_match],
                          processing_class=tokenizer)
    trainer.train()
    report(trainer)


def bench_defaults() -> dict:
    from tinyalign.grpo import DEFAULTS

    return {k: v for k, v in DEFAULTS.items() if k not in ("save_steps", "save_total_limit")}


def ours(adapter: str, out: str, steps: int) -> None:
    harness.train("grpo", RECIPE, [f"model.adapter={adapter}", f"output_dir={out}", f"train.max_steps={steps}",
                                   "train.save_strategy=no", "probe=false", "doctor=false"])
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    runtime = next(e["train_runtime"] for e in state["log_history"] if "train_runtime" in e)
    print(json.dumps({"runtime": runtime, "steps": state["global_step"], "rss_mb": peak_rss_mb()}))


def report(trainer) -> None:
    runtime = next(e["train_runtime"] for e in trainer.state.log_history if "train_runtime" in e)
    print(json.dumps({"runtime": runtime, "steps": trainer.state.global_step, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(which: str, adapter: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(harness.module_command("bench.benchmarks.grpo_overhead", "--child", which,
                                                     "--adapter", adapter, "--steps", steps, "--out", f"{out}/run"),
                              capture_output=True, text=True, env=harness.child_env(1), cwd=ROOT)
        if proc.returncode:
            sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.grpo_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--adapter", help="SFT adapter to start from (default: train recipes/tiny_sft.yaml once)")
    parser.add_argument("--child", choices=["ours", "plain"])
    parser.add_argument("--out", help=argparse.SUPPRESS)  # the child's run directory
    harness.add_record_arg(parser)
    args = parser.parse_args()
    if args.child:
        (ours if args.child == "ours" else plain_trl)(args.adapter, args.out, args.steps)
        return

    adapter = args.adapter
    if adapter is None:
        folder = Path(tempfile.mkdtemp())
        adapter = str(harness.train_process("sft", builtin("tiny_sft.yaml"), [f"output_dir={folder / 'sft'}"], 1,
                                            folder / "sft.log", "the tiny SFT start"))
    results = {"ours": [], "plain": []}
    for round_ in range(args.rounds):
        for which in ("ours", "plain") if round_ % 2 == 0 else ("plain", "ours"):
            r = child(which, adapter, args.steps)
            results[which].append(r)
            print(f"round {round_ + 1} {which:<5} {r['runtime'] / r['steps']:.3f} s/step  peak RSS {r['rss_mb']:.0f} MB",
                  flush=True)
    step = {k: median(r["runtime"] / r["steps"] for r in v) for k, v in results.items()}
    rss = {k: max(r["rss_mb"] for r in v) for k, v in results.items()}
    ratio = {"s_per_step": step["ours"] / step["plain"], "peak_rss": rss["ours"] / rss["plain"]}
    print(f"\nGRPO, tiny task, {args.steps} steps x {args.rounds} rounds (median s/step, max peak RSS)\n")
    print(harness.table([("plain TRL", f"{step['plain']:.3f}", f"{rss['plain']:.0f}"),
                         ("tinyalign", f"{step['ours']:.3f}", f"{rss['ours']:.0f}"),
                         ("ratio", f"{ratio['s_per_step']:.3f}", f"{ratio['peak_rss']:.3f}")],
                        ["", "s/step (median)", "peak RSS MB"]))
    harness.record("grpo_overhead", {"steps": args.steps, "rounds": args.rounds, "adapter": args.adapter,
                                     "runs": results, "s_per_step": step, "peak_rss_mb": rss, "ratio": ratio},
                   args.record, smoke=args.steps < 5)

if __name__ == "__main__":
    main()
