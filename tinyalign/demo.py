"""python -m tinyalign.demo — the offline end-to-end demo on CPU, with held-out accuracy per stage.

    tiny base (knows arithmetic as raw text, not chat) --SFT--> adapter

Every stage is the real product path (4-bit base, LoRA, TRL) on the built-in tiny model and task.
"""

import argparse
import time
from pathlib import Path

from .errors import UserError, cli

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def recipe_path(name: str) -> str:
    path = RECIPES / name
    if not path.is_file():
        raise UserError(f"demo recipe not found: {path} (run the demo from a checkout of tinyalign)")
    return str(path)


def held_out_accuracy(recipe_file: str, adapters: dict[str, str], limit: int) -> dict[str, float]:
    """Greedy exact-match accuracy on held-out questions for the base and each adapter (base loaded once)."""
    from . import data, model, recipe as recipes, scoring

    recipe = recipes.load(recipe_file)
    rows = data.eval_rows(recipe.data, limit=limit, seed=recipe.seed)
    reward = scoring.accuracy_reward(recipe)
    max_new = scoring.generation_settings(recipe)["max_new_tokens"]
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    results = {}
    with policy.disable_adapter():
        results["base"] = scoring.greedy_accuracy(policy, tokenizer, rows, reward, max_new, desc="base")
    for name in adapters:
        policy.set_adapter(name)
        results[name] = scoring.greedy_accuracy(policy, tokenizer, rows, reward, max_new, desc=name)
    return results


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyalign.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="where the demo's runs go (default: runs/demo)")
    parser.add_argument("--eval-prompts", type=int, default=500, help="held-out questions to score")
    args = parser.parse_args(argv)
    out = Path(args.out)
    timings = {}

    import torch

    torch.set_num_threads(1)  # a tiny model's matmuls are too small to gain from threads

    from . import sft

    print("== stage 1: SFT — teach the base to answer in chat (4-bit QLoRA)")
    start = time.time()
    sft.main([recipe_path("tiny_sft.yaml"), f"output_dir={out / 'sft'}", "overwrite=true"])
    timings["sft"] = time.time() - start

    print("== held-out accuracy (greedy, exact match)")
    accuracy = held_out_accuracy(recipe_path("tiny_sft.yaml"), {"sft": str(out / "sft")}, args.eval_prompts)
    print(f"\n{'stage':<8} {'accuracy':>9} {'train time':>11}")
    for stage, acc in accuracy.items():
        took = f"{timings[stage]:.0f} s" if stage in timings else "-"
        print(f"{stage:<8} {acc:>8.1%} {took:>11}")
    print(f"\nruns in {out}/ — each holds the adapter, recipe.yaml and trainer_state.json")


if __name__ == "__main__":
    main()
