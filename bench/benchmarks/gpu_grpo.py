"""python -m bench.benchmarks.gpu_grpo [--steps N] [--variants trl,...,dpo] — GRPO, SFT, DPO memory and speed on one GPU.

A Qwen2.5-1.5B-shaped model with random weights, built from its config (no download), trained with
the GRPO settings of recipes/qwen_1.5b_math.yaml on synthetic prompts, three ways:

    trl           plain TRL + bitsandbytes: a 4-bit model and a LoraConfig handed to GRPOTrainer
    transformers  tinyalign's transformers backend (tinyalign.models.loading.load_for_training)
    unsloth       tinyalign's unsloth backend (skipped, with a message, when unsloth is not installed)

All three share the same GRPOConfig (the recipe's train section on tinyalign's defaults) and the
recipe's reward functions. Each runs in its own process, so peak memory is its own and unsloth can
patch TRL before TRL is imported. Measured, after --warmup steps: peak VRAM
(torch.cuda.max_memory_allocated over the whole process: weights, generation and training),
optimizer steps per second, and generated tokens per second of generation time.

Random weights almost never emit the end-of-turn token, so every completion runs to
max_completion_length: the figures are an upper bound on time and memory for these settings.

Then the memory of SFT and DPO steps with recipes/qwen_1.5b_sft.yaml and qwen_1.5b_dpo.yaml's
settings (backend auto) on synthetic rows of the recipes' lengths: `sft` and `dpo` in --variants.

The whole run keeps to --deadline seconds (default 510: ~9 min with the installs): each variant gets
what is left, and one that would start too late is listed as skipped. On a bare CUDA machine with no
package index, `make gpu-bench` installs the wheels `make gpu-wheels` fetched and runs this.

Prints a Markdown table for bench/RESULTS.md and writes the run's record (bench/harness.py: commit,
hardware, versions, command and the raw figures) to --record.
`--smoke` runs the same harness on a scaled-down model on CPU, to check it without a GPU.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import harness
from tinyalign.config.recipe import builtin

ROOT = harness.ROOT

RECIPE = builtin("qwen_1.5b_math.yaml")
VARIANTS = ("trl", "transformers", "unsloth", "sft", "dpo")
METHOD_RECIPES = {"sft": builtin("qwen_1.5b_sft.yaml"), "dpo": builtin("qwen_1.5b_dpo.yaml")}
ANSWER_WORDS = 300  # a worked GSM8K solution / a chat answer, in tokens

# Qwen/Qwen2.5-1.5B-Instruct's config.json, so no download is needed (1.54 B parameters).
QWEN25_1_5B = dict(
    hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu", max_window_layers=21,
    sliding_window=32768, use_sliding_window=False, attention_dropout=0.0, initializer_range=0.02,
    bos_token_id=151643, eos_token_id=151645,
)
# --smoke: the same vocabulary and special tokens, a model small enough for a CPU.
SMOKE = {**QWEN25_1_5B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_window_layers": 2}
SMOKE_TRAIN = ["train.max_completion_length=8", "train.num_generations=4", "train.per_device_train_batch_size=4",
               "train.gradient_accumulation_steps=2"]
PAD, IM_START, IM_END = 151643, 151644, 151645
PROMPT_WORDS = 120  # with the recipe's system prompt, about a GSM8K prompt's length in tokens


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.benchmarks.gpu_grpo", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="measured optimizer steps per variant (default 4)")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and not measured (default 1)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    harness.add_record_arg(p)
    p.add_argument("--model-dir", help="where the random-weight model is built (default: a temporary folder)")
    p.add_argument("--smoke", action="store_true", help="scaled-down model on CPU: checks the harness, not the GPU")
    p.add_argument("--deadline", type=float, default=510, help="seconds for the whole run (default 510)")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    return p.parse_args(argv)


# ---------------------------------------------------------------- the model, built locally


def build_model(folder: Path, smoke: bool) -> None:
    """Random bf16 weights from the config (fp32 for --smoke), plus a ChatML tokenizer. Built on the
    CPU: this process then holds no GPU memory while the variants run."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from tinyalign.models.tiny import CHAT_TEMPLATE

    torch.manual_seed(0)
    config = Qwen2Config(**(SMOKE if smoke else QWEN25_1_5B))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if smoke else torch.bfloat16)  # never a 6 GB fp32 copy first
    try:
        model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(folder)
    # One word per token id, so synthetic prompts of N words are N tokens and every id decodes.
    vocab = {f"w{i}": i for i in range(config.vocab_size)}
    for token, i in (("<|endoftext|>", PAD), ("<|im_start|>", IM_START), ("<|im_end|>", IM_END)):
        del vocab[f"w{i}"]
        vocab[token] = i
    core = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)


# ---------------------------------------------------------------- one variant, in its own process


def synthetic_prompts(recipe, count: int):
    """Random-word questions in the recipe's chat format, with a GSM8K-style reference answer."""
    import random

    from datasets import Dataset

    rng = random.Random(0)
    system = [{"role": "system", "content": recipe.data.system}] if recipe.data.system else []
    rows = [{"prompt": system + [{"role": "user", "content": " ".join(f"w{rng.randrange(100, 150000)}"
                                                                     for _ in range(PROMPT_WORDS))}],
             "answer": "#### 42"} for _ in range(count)]
    return Dataset.from_list(rows)


def load_recipe(model_dir: str, args, variant: str):
    from tinyalign import grpo
    from tinyalign.config import recipe as recipes

    overrides = [f"model.name={model_dir}", "model.backend=" + ("unsloth" if variant == "unsloth" else "transformers"),
                 f"output_dir={tempfile.mkdtemp(prefix='bench-grpo-')}", f"train.max_steps={args.warmup + args.steps}",
                 "train.logging_steps=1", "train.save_strategy='no'", "probe=false", "doctor=false",
                 *(SMOKE_TRAIN if args.smoke else [])]
    return grpo.resolve(recipes.load(RECIPE, overrides, method="grpo"))  # what `python -m tinyalign.grpo` would train with


def plain_trl_model(recipe):
    """What a TRL user writes: a 4-bit bitsandbytes model and a LoraConfig for GRPOTrainer to apply."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from tinyalign.models.loading import compute_dtype

    dtype = compute_dtype(recipe.model)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(recipe.model.name, quantization_config=quantization, dtype=dtype,
                                                 device_map={"": 0} if torch.cuda.is_available() else None)
    lora = recipe.model.lora
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return model, AutoTokenizer.from_pretrained(recipe.model.name), peft_config


def run_variant(args) -> dict:
    variant = args.variant
    if variant == "unsloth":
        import unsloth  # noqa: F401  (first: it patches transformers, peft and TRL as they are imported)
    import torch

    cuda = torch.cuda.is_available()
    recipe = load_recipe(args.model_dir, args, variant)

    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tinyalign import rewards
    from tinyalign.models import loading as models
    from tinyalign.training import run

    start = time.perf_counter()
    config = run.trl_config(recipe, GRPOConfig)
    peft_config = None
    if variant == "trl":
        policy, tokenizer, peft_config = plain_trl_model(recipe)
    else:
        policy, tokenizer = models.load_for_training(recipe.model, config.gradient_checkpointing)
    load_s = time.perf_counter() - start
    prompts_per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps // config.num_generations
    trainer = GRPOTrainer(model=policy, args=config, peft_config=peft_config,
                          train_dataset=synthetic_prompts(recipe, prompts_per_step * config.max_steps),
                          reward_funcs=[rewards.resolve(spec) for spec in recipe.rewards], processing_class=tokenizer)

    step_ends: list[float] = []
    generation = {"seconds": 0.0, "tokens": 0, "calls": 0}

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            step_ends.append(time.perf_counter())

    trainer.add_callback(StepClock())
    generate = trainer._generate

    def timed_generate(prompts):  # TRL's rollout: prompts in, completion ids out
        began = time.perf_counter()
        result = generate(prompts)
        if trainer.state.global_step >= args.warmup:
            generation["seconds"] += time.perf_counter() - began
            generation["tokens"] += sum(len(ids) for ids in result[1])
            generation["calls"] += 1
        return result

    trainer._generate = timed_generate
    trainer.train()

    measured = step_ends[args.warmup - 1:] if args.warmup else [start + load_s] + step_ends
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    return {
        "variant": variant,
        "peak_vram_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
        "steps_per_s": (len(measured) - 1) / (measured[-1] - measured[0]),
        "seconds_per_step": (measured[-1] - measured[0]) / (len(measured) - 1),
        # unsloth may route generation around TRL's _generate; then the count is missing, not wrong
        "generated_tokens_per_s": generation["tokens"] / generation["seconds"] if generation["calls"] else None,
        "completions_per_step": config.per_device_train_batch_size * config.gradient_accumulation_steps,
        "mean_completion_tokens": sum(lengths[args.warmup:]) / max(1, len(lengths[args.warmup:])),
        "load_s": load_s,
        "gradient_checkpointing": config.gradient_checkpointing,
        "dtype": "bf16" if config.bf16 else "fp16" if config.fp16 else "fp32",
    }


def words(rng, count: int) -> str:
    return " ".join(f"w{rng.randrange(100, 150000)}" for _ in range(count))


def run_method(args) -> dict:
    """Peak memory and s/step of `python -m tinyalign.sft|dpo` on the recipe's settings, synthetic rows."""
    import json as json_
    import random

    import torch

    variant, cuda = args.variant, torch.cuda.is_available()
    rng = random.Random(0)
    data = Path(tempfile.mkdtemp(prefix=f"bench-{variant}-data-"))
    for split, count in (("train", 64), ("test", 8)):
        rows = [{"question": words(rng, PROMPT_WORDS), "answer": words(rng, ANSWER_WORDS),
                 "chosen": words(rng, ANSWER_WORDS), "rejected": words(rng, ANSWER_WORDS)} for _ in range(count)]
        (data / f"{split}.jsonl").write_text("".join(json_.dumps(r) + "\n" for r in rows))
    out = tempfile.mkdtemp(prefix=f"bench-{variant}-")
    steps = args.warmup + args.steps
    overrides = [f"model.name={args.model_dir}", "model.adapter=null", f"data.source={data}", "data.test_split=test",
                 "data.prompt={question}", f"output_dir={out}", "overwrite=true", f"train.max_steps={steps}",
                 "train.logging_steps=1", "train.save_strategy='no'", "train.eval_strategy='no'", "doctor=false",
                 *(["data.completion={answer}"] if variant == "sft" else ["data.chosen={chosen}", "data.rejected={rejected}"]),
                 *(["train.per_device_train_batch_size=2", "train.gradient_accumulation_steps=1", "train.max_length=64"]
                   if args.smoke else [])]
    start = time.perf_counter()
    harness.train(variant, METHOD_RECIPES[variant], overrides)
    state = json_.loads((Path(out) / "trainer_state.json").read_text())
    runtime = next(e["train_runtime"] for e in state["log_history"] if "train_runtime" in e)
    return {"variant": variant,
            "peak_vram_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
            "seconds_per_step": runtime / state["global_step"], "steps_per_s": state["global_step"] / runtime,
            "generated_tokens_per_s": None, "load_s": time.perf_counter() - start - runtime}


# ---------------------------------------------------------------- the driver


def table(results: list[dict]) -> str:
    baseline = next((r for r in results if r["variant"] == "trl" and "skipped" not in r), None)
    rows = []
    for r in results:
        if "skipped" in r:
            rows.append((r["variant"], f"skipped: {r['skipped']}", "", "", "", ""))
            continue
        vram = f"{r['peak_vram_gb']:.2f}" if r["peak_vram_gb"] is not None else "-"
        tokens = f"{r['generated_tokens_per_s']:.0f}" if r["generated_tokens_per_s"] else "n/a"
        ratio = f"{r['steps_per_s'] / baseline['steps_per_s']:.2f}x" if baseline and r["variant"] not in METHOD_RECIPES else "-"
        rows.append((r["variant"], vram, f"{r['steps_per_s']:.3f}", f"{r['seconds_per_step']:.1f}", tokens, ratio))
    return harness.table(rows, ["variant", "peak VRAM (GB)", "steps/s", "s/step", "generated tok/s", "vs plain TRL"],
                         align="lrrrrr")


def main(argv=None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        print("--steps must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("bench.benchmarks.gpu_grpo measures GPU memory and speed and needs a CUDA GPU; none was found. "
              "(--smoke runs the harness on CPU with a scaled-down model.)", file=sys.stderr)
        return 2
    if args.variant:
        run = run_method if args.variant in METHOD_RECIPES else run_variant
        print("RESULT " + json.dumps(run(args)), flush=True)
        return 0

    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        print(f"unknown variant {', '.join(unknown)}; choices: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    model_dir = Path(args.model_dir or tempfile.mkdtemp(prefix="qwen2.5-1.5b-random-"))
    if not (model_dir / "config.json").is_file():
        print(f"building a Qwen2.5-1.5B-shaped model with random weights in {model_dir}", flush=True)
        build_model(model_dir, args.smoke)

    results = []
    deadline = started + args.deadline
    for variant in wanted:
        left = deadline - time.monotonic()
        if left < 60:  # not enough for a load and two steps: say so rather than overrun the machine's time
            print(f"== {variant}: skipped, out of time", flush=True)
            results.append({"variant": variant, "skipped": f"out of time ({args.deadline:.0f} s deadline)"})
            continue
        if variant == "unsloth" and (args.smoke or importlib.util.find_spec("unsloth") is None):
            reason = "needs a CUDA GPU" if args.smoke else "unsloth is not installed (pip install 'tinyalign[unsloth]')"
            print(f"== {variant}: skipped, {reason}", flush=True)
            results.append({"variant": variant, "skipped": reason})
            continue
        print(f"== {variant}", flush=True)
        cmd = harness.module_command("bench.benchmarks.gpu_grpo", "--variant", variant, "--model-dir", model_dir,
                                     "--steps", args.steps, "--warmup", args.warmup, *(["--smoke"] if args.smoke else []))
        env = {**harness.child_env(), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, timeout=left)
        except subprocess.TimeoutExpired as e:
            print((e.stdout or "")[-3000:] if isinstance(e.stdout, str) else "")
            results.append({"variant": variant, "skipped": f"stopped at the deadline after {left:.0f} s"})
            continue
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-3000:])
            results.append({"variant": variant, "skipped": f"failed with exit status {proc.returncode} (output above)"})
            continue
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
        print(json.dumps(results[-1], indent=1), flush=True)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (smoke)"
    harness.record("gpu_grpo", {"gpu": gpu, "recipe": str(RECIPE.relative_to(ROOT)), "results": results}, args.record,
                   smoke=args.smoke, extra_versions=("unsloth",))
    print(f"\n{harness.command_line()}\n{gpu}; {harness.versions(('unsloth',))}\n\n{table(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
