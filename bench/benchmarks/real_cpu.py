"""One GRPO step on a real model on CPU, broken down: tinyalign vs the same step written against TRL.

    python -m bench.benchmarks.real_cpu [--rounds 1] [--threads auto|N] [--busy] [--demo] [--iterations 1,2]
                                        [--variants ours,ours-fp32,plain,plain-default]

SmolLM2-135M-Instruct (pkg:smollm2-135m-instruct) in 4-bit NF4 + LoRA r 16, one prompt x 8
completions of at most 32 tokens, think_format + math_accuracy, tinyalign's GRPO defaults. Each
variant runs in its own subprocess with the same thread count; TRL's own methods are timed in place:

    generation  GRPOTrainer._generate_single_turn   (the KV-cached sampling loop)
    log-probs   _get_per_token_logps_and_entropies  (the forward passes of the loss, and `old`)
    old         the same, run without gradients: the "old" log-prob pass (β is 0 here: no reference pass)
    rewards     _calculate_rewards
    backward    Accelerator.backward

`--busy` runs a CPU-bound neighbour process throughout, as on a laptop doing something else;
`--threads 2` vs `--threads auto` under `--busy` shows what choosing threads by load is worth.

`--demo` measures the real-model demo's step instead (recipes/smollm2_word_grpo.yaml's shape): full
precision, 8 word problems x 8 answers of at most 32 tokens, math_accuracy, its system prompt, from the
base, with `flat_groups: keep` so that both variants do the same work (`drop` is measured against `keep`
by bench.studies.dynamic_sampling).

`--iterations 1,2` runs each variant at each `num_iterations` (GRPO's inner updates, mu): one generated
batch then serves mu optimizer steps. Plain TRL pays one more forward pass per batch for the "old"
log-probs; tinyalign takes them from the batch's first update (tinyalign/trl_patches/old_logps.py). Times are per
optimizer step (the run's time over its mu steps); mu > 1 is a different update (clipped reuse of the same
answers), so this prices the step, not what it learns.

Variants: `ours` is tinyalign as it chooses on this machine (bf16 autocast over fp32 weights on a CPU with
native bf16, tinyalign/models/precision.py), `ours-fp32` the same with model.dtype=float32; `plain` is the
step written against TRL with bf16 off (fp32, as tinyalign trained before), `plain-default` the same with
TRL's own default precision (GRPOConfig(use_cpu=True) leaves bf16 on).

Prints the table and writes the run's record (bench/harness.py) to --record.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench import harness

ROOT = harness.ROOT
MODEL = "pkg:smollm2-135m-instruct"
SYSTEM = "Think briefly inside <think> </think>, then give only the final number inside <answer> </answer>."
PROBLEMS = [("Tom has 3 apples and buys 4 more. How many apples does he have?", "7")]  # one: both sample it
TRAIN = dict(max_steps=1, num_generations=8, per_device_train_batch_size=8, gradient_accumulation_steps=1,
             max_completion_length=32, warmup_steps=0, logging_steps=1, save_strategy="no")
REWARDS = [{"name": "think_format", "weight": 0.5}, {"name": "math_accuracy", "weight": 1.0}]
PARTS = ("generation", "log-probs", "old", "rewards", "backward")
DEMO_SYSTEM = "Solve the word problem. Show the calculation, then the answer."


def demo_mode() -> None:
    """Switch the module's settings to the real-model demo's GRPO step (see the docstring)."""
    global SYSTEM, PROBLEMS, TRAIN, REWARDS, QUANTIZATION
    from tinyalign.data import word_problems

    SYSTEM = DEMO_SYSTEM
    PROBLEMS = [(r["question"], r["answer"]) for r in word_problems.rows()["train"][:8]]
    TRAIN = {**TRAIN, "per_device_train_batch_size": 64}
    REWARDS = [{"name": "math_accuracy", "weight": 1.0}]
    QUANTIZATION = "none"


QUANTIZATION = "4bit"


def instrument() -> dict:
    """Wrap the parts of TRL's GRPO step with wall-clock timers; returns the running totals."""
    import torch
    from accelerate import Accelerator
    from trl import GRPOTrainer

    totals = dict.fromkeys(PARTS, 0.0)

    def timed(owner, method, part):
        inner = getattr(owner, method)

        def wrapper(*args, **kwargs):
            start, no_grad = time.perf_counter(), not torch.is_grad_enabled()
            try:
                return inner(*args, **kwargs)
            finally:
                totals[part] += time.perf_counter() - start
                if part == "log-probs" and no_grad:
                    totals["old"] += time.perf_counter() - start

        setattr(owner, method, wrapper)

    timed(GRPOTrainer, "_generate_single_turn", "generation")
    timed(GRPOTrainer, "_get_per_token_logps_and_entropies", "log-probs")
    timed(GRPOTrainer, "_calculate_rewards", "rewards")
    timed(Accelerator, "backward", "backward")
    return totals


def write_data(folder: Path) -> Path:
    path = folder / "problems.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    return path


def ours(out: Path, totals: dict, dtype: str = "auto") -> dict:
    import yaml

    recipe = {"method": "grpo", "model": {"name": MODEL, "quantization": QUANTIZATION, "dtype": dtype,
                                          "lora": {"r": 16, "alpha": 32, "dropout": 0.05}}, "flat_groups": "keep",
              "data": {"source": str(write_data(out.parent)), "prompt": "{question}", "answer": "{answer}",
                       "system": SYSTEM},
              "rewards": REWARDS, "train": TRAIN, "probe": False, "doctor": False, "output_dir": str(out)}
    (out.parent / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    harness.train("grpo", out.parent / "recipe.yaml")
    return summary(json.loads((out / "trainer_state.json").read_text())["log_history"])


def plain_trl(out: Path, totals: dict, trl_default: bool = False) -> dict:
    """What a user would write by hand with TRL, bitsandbytes and PEFT, on the same folder and settings:
    fp32, or (`trl_default`) with the precision GRPOConfig picks when it is not told."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import GRPOConfig, GRPOTrainer

    from tinyalign import rewards
    from tinyalign.grpo import DEFAULTS
    from tinyalign.models import gguf

    path = gguf.model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if QUANTIZATION == "4bit":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    data = load_dataset("json", data_files=str(write_data(out.parent)), split="train")
    data = data.map(lambda r: {"prompt": [{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": r["question"]}]})
    settings = {**{k: v for k, v in DEFAULTS.items() if k not in ("save_steps", "save_total_limit")}, **TRAIN}
    precision = {} if trl_default else {"bf16": False}
    config = GRPOConfig(output_dir=str(out), use_cpu=True, **precision, gradient_checkpointing=False, beta=0.0,
                        reward_weights=[r["weight"] for r in REWARDS], **settings)
    trainer = GRPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                          reward_funcs=[rewards.resolve(r) for r in REWARDS])
    trainer.train()
    return summary(trainer.state.log_history)


VARIANTS = {"ours": ours, "ours-fp32": lambda out, totals: ours(out, totals, "float32"), "plain": plain_trl,
            "plain-default": lambda out, totals: plain_trl(out, totals, trl_default=True)}
LABELS = {"ours": "tinyalign", "ours-fp32": "tinyalign fp32", "plain": "plain TRL fp32",
          "plain-default": "plain TRL default"}
COMPARED = (("ours", "plain"), ("ours", "ours-fp32"), ("ours", "plain-default"))  # time ratios: < 1 is faster


def summary(log_history: list[dict]) -> dict:
    """Time per optimizer step, and the completion length that generation time depends on."""
    return {"step": next(e["train_runtime"] for e in log_history if "train_runtime" in e) / TRAIN["max_steps"],
            "tokens": next(e["completions/mean_length"] for e in log_history if "completions/mean_length" in e)}


def child(which: str, threads: str, demo: bool = False, iterations: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = harness.child_env(None if threads == "auto" else threads)
        if threads == "auto":
            env.pop("OMP_NUM_THREADS", None)
        command = harness.module_command("bench.benchmarks.real_cpu", "--child", which, "--out", f"{tmp}/run",
                                         "--iterations", iterations, *(["--demo"] if demo else []))
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode:
            sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(which: str, out: str, iterations: int) -> None:
    import torch

    from tinyalign.core import threads

    global TRAIN
    TRAIN = {**TRAIN, "num_iterations": iterations, "max_steps": iterations}  # one generated batch, all its updates
    threads.use_cpu_threads()  # both variants: OMP_NUM_THREADS if the parent set it, else by load
    totals = instrument()
    result = VARIANTS[which](Path(out), totals)
    per_step = {part: seconds / iterations for part, seconds in totals.items()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux reports KiB)
    print(json.dumps({**result, **per_step, "threads": torch.get_num_threads(), "peak_rss_gib": peak}))


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.real_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each variant (median shown)")
    parser.add_argument("--threads", default="auto", help="auto (tinyalign's choice: the cores busy now left to others) or a number")
    parser.add_argument("--busy", action="store_true", help="run a CPU-bound neighbour process throughout")
    parser.add_argument("--variants", default="ours,plain", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--demo", action="store_true", help="the real-model demo's GRPO step (see above)")
    parser.add_argument("--iterations", default="1", help="num_iterations to run each variant at: 1, or a comma list (1,2)")
    parser.add_argument("--child", choices=list(VARIANTS))
    parser.add_argument("--out", help=argparse.SUPPRESS)  # the child's run directory
    harness.add_record_arg(parser)
    args = parser.parse_args()
    if args.demo:
        demo_mode()
    iterations = [int(mu) for mu in args.iterations.split(",")]
    if args.child:
        return run_child(args.child, args.out, iterations[0])

    from tinyalign.models import gguf
    from tinyalign.models.precision import cpu_bf16

    gguf.model_path(MODEL)  # convert once, outside the timings
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        variants = [(which, mu) for which in args.variants.split(",") for mu in iterations]
        results = {v: [] for v in variants}
        for round_ in range(args.rounds):
            for which, mu in variants if round_ % 2 == 0 else variants[::-1]:
                results[which, mu].append(child(which, args.threads, args.demo, mu))
                print(f"round {round_ + 1} {which} num_iterations {mu}: {json.dumps(results[which, mu][-1])}", flush=True)
    finally:
        if neighbour:
            neighbour.kill()
    table = {v: {k: median(r.get(k, 0.0) for r in rs) for k in ("step", *PARTS, "tokens", "threads", "peak_rss_gib")}
             for v, rs in results.items()}
    shape = f"{len(PROBLEMS)} x 8" if args.demo else "8"
    print(f"\nGRPO step, {MODEL} {QUANTIZATION}, {shape} x 32 tokens, threads {args.threads}"
          f"{', busy neighbour' if args.busy else ''}"
          f" (median of {args.rounds}; seconds per optimizer step)")
    headers = ["seconds per optimizer step", "step", *PARTS, "mean tokens", "threads", "peak RSS GiB"]
    rows = []

    def line(label: str, row: dict) -> None:
        rows.append((label, *(f"{row[k]:.2f}" for k in ("step", *PARTS)),
                     f"{row['tokens']:.1f}" if "tokens" in row else "-",
                     f"{row['threads']:.0f}" if "threads" in row else "-",
                     f"{row['peak_rss_gib']:.2f}" if "peak_rss_gib" in row else "-"))

    def ratio(a: dict, b: dict) -> dict:
        return {k: a[k] / max(b[k], 1e-9) for k in ("step", *PARTS, "tokens", "peak_rss_gib")}

    ratios = {}
    for mu in iterations:
        rows_mu = {name: table[name, mu] for name in VARIANTS if (name, mu) in table}
        suffix = f", mu {mu}" if len(iterations) > 1 else ""
        for name, row in rows_mu.items():
            line(LABELS[name] + suffix, row)
        for a, b in COMPARED:
            if a in rows_mu and b in rows_mu:
                ratios[f"{a}/{b} mu {mu}"] = ratio(rows_mu[a], rows_mu[b])
                line(f"{LABELS[a]} / {LABELS[b]}" + suffix, ratios[f"{a}/{b} mu {mu}"])
    for name, label in (("plain", "plain TRL"), ("ours", "tinyalign")):
        for mu in iterations[1:]:
            if (name, mu) in table and (name, iterations[0]) in table:
                ratios[f"{name} mu {mu}/{iterations[0]}"] = ratio(table[name, mu], table[name, iterations[0]])
                line(f"{label} mu {mu}/{iterations[0]}", ratios[f"{name} mu {mu}/{iterations[0]}"])
    print(harness.table(rows, headers))
    harness.record("real_cpu" + ("_demo" if args.demo else ""),
                   {"model": MODEL, "quantization": QUANTIZATION, "threads": args.threads, "busy": args.busy,
                    "cpu_bf16": cpu_bf16(),
                    "rounds": args.rounds, "iterations": iterations,
                    "runs": {f"{which} mu {mu}": rs for (which, mu), rs in results.items()},
                    "median": {f"{which} mu {mu}": row for (which, mu), row in table.items()}, "ratios": ratios},
                   args.record)

if __name__ == "__main__":
    main()
