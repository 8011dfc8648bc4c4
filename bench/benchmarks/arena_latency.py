"""Arena answer latency with several annotators at once: 1, 3 and 8 tabs pressing Send together.

    python -m bench.benchmarks.arena_latency [--tokens 48] [--rounds 5] [--tabs 1 3 8] [--quantization 4bit]
    python -m bench.benchmarks.arena_latency --model pkg:smollm2-135m-instruct --quantization none --tabs 1 3 \
        [--adapter left=runs/demo-real/sft --adapter right=runs/real_dpo/dpo_T2_S0]

Each tab asks both panes (two checkpoints, one adapter each; by default two untrained adapters on the
4-bit tiny base) and waits for both answers. Per tab: the time from Send to the first token on screen,
and to the last token of both answers. The engine serves the requests waiting at the start of a
generate call in that one call; "one at a time" runs the same requests through the same engine behind
a lock, as the arena did before (the baseline, in the same run). Goal: 3 tabs within 1.3x of one tab.
Figures depend on the machine (and on how busy it is): run it where the arena will run. Torch threads:
--threads, else OMP_NUM_THREADS, else 1. Prints the table and writes the run's record (bench/harness.py).
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

from bench import harness

PROMPT = [{"role": "user", "content": "Tell me about the sea, in a few sentences."}]


def adapters(folder: Path, spec) -> dict[str, str]:
    """Two LoRA adapters on the tiny base, saved as a run would save them (untrained: speed only)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tinyalign.models import loading as models

    tokenizer = models.load_tokenizer(spec)
    out = {}
    for i, name in enumerate(("left", "right")):
        torch.manual_seed(i)
        base = models.load_base(spec, tokenizer)
        peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
        peft_model.save_pretrained(folder / name)
        out[name] = str(folder / name)
    return out


def tabs_at_once(engine, tabs: int, tokens: int, serial_lock=None) -> list[tuple[float, float]]:
    """Every tab sends at the same moment; returns each tab's (seconds to the first token on screen,
    seconds until both its answers are in)."""
    start = threading.Barrier(tabs)
    latencies = [(0.0, 0.0)] * tabs

    def answer(began):
        first = None
        for texts in engine.stream([PROMPT, PROMPT], ["left", "right"], max_new_tokens=tokens):
            if first is None and any(texts):
                first = time.perf_counter() - began
        return first, time.perf_counter() - began

    def tab(i):
        start.wait()
        began = time.perf_counter()
        if serial_lock is None:
            latencies[i] = answer(began)
        else:
            with serial_lock:
                latencies[i] = answer(began)

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.arena_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per answer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 3, 8])
    parser.add_argument("--quantization", default="4bit", choices=["4bit", "8bit", "none"])
    parser.add_argument("--model", default="tiny:qwen2-1m", help="the base (default tiny:qwen2-1m)")
    parser.add_argument("--adapter", action="append", default=[],
                        help="left=RUN_DIR and right=RUN_DIR: the panes' checkpoints (default: two untrained adapters)")
    parser.add_argument("--threads", type=int, help="torch threads (default: OMP_NUM_THREADS, else 1)")
    harness.add_record_arg(parser)
    args = parser.parse_args()
    given = dict(a.split("=", 1) for a in args.adapter if "=" in a)
    if args.adapter and sorted(given) != ["left", "right"]:
        sys.exit("--adapter takes left=RUN_DIR and right=RUN_DIR, both")

    threads = harness.threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
    from tinyalign.app.engine import Engine
    from tinyalign.config.recipe import Model

    spec = Model(name=args.model, quantization=args.quantization)
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine.load(spec, given or adapters(Path(folder), spec))
    engine.generate([PROMPT, PROMPT], ["left", "right"], max_new_tokens=4)  # warm-up
    one, rows, figures = None, [], []
    for tabs in args.tabs:
        batched = [x for _ in range(args.rounds) for x in tabs_at_once(engine, tabs, args.tokens)]
        serial = [x for _ in range(args.rounds) for x in tabs_at_once(engine, tabs, args.tokens, threading.Lock())]
        (first, done), (serial_first, serial_done) = (map(median, zip(*rows_)) for rows_ in (batched, serial))
        one = one or done
        figures.append({"tabs": tabs, "first_s": first, "both_s": done, "serial_first_s": serial_first,
                        "serial_both_s": serial_done, "x_one_tab": done / one, "serial_x_one_tab": serial_done / one})
        rows.append((tabs, f"{first:.2f}", f"{done:.2f}", f"{done / one:.2f}", f"{serial_first:.2f}",
                     f"{serial_done:.2f}", f"{serial_done / one:.2f}"))
        print(f"{tabs} tabs: both answers in {done:.2f} s, one at a time {serial_done:.2f} s", flush=True)
    print(harness.table(rows, ["tabs", "first token (s)", "both answers (s)", "x one tab",
                               "one at a time: first token (s)", "both answers (s)", "x one tab"]))
    panes = " vs ".join(f"{k}={v}" for k, v in given.items()) or "two untrained adapters"
    print(f"({args.model} {args.quantization}, {panes}; medians over tabs x {args.rounds} rounds; "
          f"{args.tokens} new tokens, torch threads {threads})")
    harness.record("arena_latency", {"model": args.model, "quantization": args.quantization, "panes": panes,
                                     "tokens": args.tokens, "rounds": args.rounds, "threads": threads,
                                     "tabs": figures}, args.record, smoke=args.rounds == 1 and args.tokens <= 8)

if __name__ == "__main__":
    main()
