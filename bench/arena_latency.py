"""Arena answer latency with several annotators at once: 1, 3 and 8 tabs pressing Send together.

    python bench/arena_latency.py [--tokens 48] [--rounds 5] [--tabs 1 3 8] [--quantization 4bit]

Each tab asks both panes (two checkpoints, one adapter each, on the 4-bit tiny base) and waits for
both answers; the latency is from Send to the last token. The engine serves the requests waiting at
the start of a generate call in that one call; "one at a time" runs the same requests through the
same engine behind a lock, as the arena did before. Goal: 3 tabs within 1.3x of one tab.
Figures depend on the machine (and on how busy it is): run it where the arena will run.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = [{"role": "user", "content": "Tell me about the sea, in a few sentences."}]


def adapters(folder: Path, spec) -> dict[str, str]:
    """Two LoRA adapters on the tiny base, saved as a run would save them (untrained: speed only)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tinyalign import model as models

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


def tabs_at_once(engine, tabs: int, tokens: int, serial_lock=None) -> list[float]:
    """Every tab sends at the same moment; returns each tab's seconds until both its answers are in."""
    start = threading.Barrier(tabs)
    latencies = [0.0] * tabs

    def tab(i):
        start.wait()
        began = time.perf_counter()
        if serial_lock is None:
            engine.generate([PROMPT, PROMPT], ["left", "right"], max_new_tokens=tokens)
        else:
            with serial_lock:
                engine.generate([PROMPT, PROMPT], ["left", "right"], max_new_tokens=tokens)
        latencies[i] = time.perf_counter() - began

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per answer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 3, 8])
    parser.add_argument("--quantization", default="4bit", choices=["4bit", "8bit", "none"])
    args = parser.parse_args()

    import torch

    from tinyalign.app.engine import Engine
    from tinyalign.recipe import Model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = Model(name="tiny:qwen2-1m", quantization=args.quantization)
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine.load(spec, adapters(Path(folder), spec))
    engine.generate([PROMPT, PROMPT], ["left", "right"], max_new_tokens=4)  # warm-up
    one = None
    print(f"{'tabs':>4}  {'batched (s, median)':>20}  {'x one tab':>9}  {'one at a time (s)':>18}  {'x one tab':>9}")
    for tabs in args.tabs:
        batched = median(x for _ in range(args.rounds) for x in tabs_at_once(engine, tabs, args.tokens))
        serial = median(x for _ in range(args.rounds)
                        for x in tabs_at_once(engine, tabs, args.tokens, threading.Lock()))
        one = one or batched
        print(f"{tabs:>4}  {batched:>20.3f}  {batched / one:>9.2f}  {serial:>18.3f}  {serial / one:>9.2f}",
              flush=True)
    print(f"(tiny:qwen2-1m {args.quantization}, 2 panes per tab, {args.tokens} new tokens, torch threads "
          f"{torch.get_num_threads()}, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
