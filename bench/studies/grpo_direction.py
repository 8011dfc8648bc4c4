"""Where does a GRPO run's update lead? Held-out greedy accuracy and the share of right sampled answers of the
adapter start + a * (final - start) for several a, and of the start plus random steps as long as the run's
own (per tensor), all paired against the start. Given several runs from the same start, the step is their
mean: what they share (noise that differs from run to run averages out).

A run that lowers greedy accuracy either moved in a bad direction or moved too far in a good one: the
sampled share at a = -1 and a = +1 tells which (first order: f(+1) - f(-1)), and random steps of the same
length tell whether any step that long costs accuracy or only the run's own direction does.

    python -m bench.studies.grpo_direction runs/sw/g4_s0 [more runs] [--start runs/demo-real/sft]
                                  [--greedy=-1,-0.5,0.5,1] [--sampled=-1,1] [--random 2] [--prompts 300] [--k 4]
                                  [--record FILE]

At a = +1 the adapter is the run's own final one, so `--greedy=1 --sampled=1 --random 0` is the run against its
start, greedy and by k samples at temperature 1, each paired gain with its 95 % interval (what the removed
bench/sampled_gain.py measured). Prints the table and writes the run's record (bench/harness.py).
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from bench import harness

RECIPE = "recipes/smollm2_word_grpo.yaml"
WEIGHTS = "adapter_model.safetensors"


def stepped(start: dict, final: dict, a: float) -> dict:
    return {key: (start[key] + a * (final[key] - start[key])).contiguous() for key in start}


def random_step(start: dict, final: dict, seed: int) -> dict:
    """start + a random direction, each tensor's step as long as the run's step on that tensor."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key in start:
        step = final[key] - start[key]
        noise = torch.randn(step.shape, generator=generator)
        out[key] = (start[key] + noise * (step.norm() / noise.norm().clamp(min=1e-12))).contiguous()
    return out


def length(start: dict, final: dict) -> float:
    return sum(float((final[key] - start[key]).norm()) ** 2 for key in start) ** 0.5


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.studies.grpo_direction", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="GRPO run directories that continued --start")
    parser.add_argument("--start", default="runs/demo-real/sft")
    parser.add_argument("--greedy", type=floats, default=[-1, -0.5, 0.5, 1], help="steps a scored greedy")
    parser.add_argument("--sampled", type=floats, default=[-1, 1], help="steps a also scored by k samples")
    parser.add_argument("--random", type=int, default=2, help="random steps of the run's length")
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--k", type=int, default=4)
    harness.add_record_arg(parser)
    args = parser.parse_args()
    from safetensors.torch import load_file, save_file

    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.evaluate import SAMPLES_RIGHT, model_metrics, paired_gain
    from tinyalign.measure import solve_rate
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generation_settings

    recipe = recipes.load(RECIPE)
    rows = data.eval_rows(recipe.data, limit=args.prompts, seed=recipe.seed)
    start = load_file(Path(args.start) / WEIGHTS)
    finals = [load_file(Path(run) / WEIGHTS) for run in args.runs]
    final = {key: sum(f[key] for f in finals) / len(finals) for key in start}
    print("step length (L2 over all tensors): " + ", ".join(f"{Path(run).name} {length(start, f):.3f}"
                                                          for run, f in zip(args.runs, finals))
          + (f"; their mean step {length(start, final):.3f}" if len(finals) > 1 else ""))
    settings = {**generation_settings(recipe), "temperature": 1.0, "top_p": 1.0}  # sampled as GRPO samples
    variants = {f"a={a:+g}": stepped(start, final, a) for a in sorted({0.0, *args.greedy, *args.sampled})}
    sampled = {f"a={a:+g}" for a in ({0.0, *args.sampled} if args.sampled else ())}  # the start too, to pair with
    variants.update({f"random {i}": random_step(start, final, i) for i in range(args.random)})
    solved_by = solve_rate.accuracy_reward(recipe)
    policy, tokenizer = model.load_with_adapters(recipe.model, {})
    scores, active = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, weights) in enumerate(variants.items()):
            folder = Path(tmp) / f"v{i}"
            folder.mkdir()
            shutil.copy(Path(args.start) / "adapter_config.json", folder)
            save_file(weights, folder / WEIGHTS)
            policy = model.use_adapter(policy, folder, f"v{i}", replace=active)
            policy.eval()
            active = f"v{i}"
            scores[name] = model_metrics(policy, tokenizer, rows, [], [], solved_by, settings,
                                         args.k if name in sampled else 1, 64, recipe.seed, name)
    base = scores["a=+0"]
    print(f"\n{len(rows)} held-out problems; greedy" + (f", and {args.k} samples at temperature 1 where scored"
                                                        if sampled else ""))
    lines = []
    for name, s in scores.items():
        sampled_cells = (f"{s['sampled']:.1%}", paired_gain(base, s, SAMPLES_RIGHT)) if SAMPLES_RIGHT in s else ("", "")
        lines.append((name, f"{s['accuracy']:.1%}", paired_gain(base, s), *sampled_cells))
    print(harness.table(lines, ["a", "greedy", "paired gain", "sampled", "paired gain"], align="lrlrl"))
    harness.record("grpo_direction", {"runs": args.runs, "start": args.start, "prompts": len(rows), "k": args.k,
                                      "steps": {name: {key: s[key] for key in ("accuracy", "sampled") if key in s}
                                                for name, s in scores.items()}}, args.record)

if __name__ == "__main__":
    main()
