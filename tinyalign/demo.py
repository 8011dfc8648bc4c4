"""python -m tinyalign.demo — the offline end-to-end demo on CPU, with held-out accuracy per stage.

    tiny base (can add, answers "46 (12+34)") --SFT (short)--> adapter --probe--> viable? --GRPO--> adapter
    then evaluate every checkpoint by the task metric, and the doctor reads the logs.

Every stage is the real product path (4-bit base, LoRA, TRL) on the built-in tiny model and task.
"""

import time
from pathlib import Path

from tinyalign.core.errors import ArgumentParser, cli, positive_int


def recipe_path(name: str) -> str:
    from tinyalign.config import recipe as recipes

    return str(recipes.builtin(name))  # shipped in the package: the demo runs from any folder


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="where the demo's runs go (default: runs/demo)")
    parser.add_argument("--eval-prompts", type=positive_int, default=200, help="held-out questions to score")
    args = parser.parse_args(argv)
    out = Path(args.out)
    timings = {}

    import torch

    torch.set_num_threads(1)  # a tiny model's matmuls are too small to gain from threads

    from tinyalign import grpo, sft
    from tinyalign.config import recipe as recipes
    from tinyalign.core import console
    from tinyalign.models import tiny

    console.quiet()
    # The tiny model is built once per machine (minutes; it says so): timed apart, so the SFT row counts training.
    start = time.time()
    tiny.model_path("tiny:qwen2-1m")
    timings["build"] = time.time() - start

    print("== stage 1: SFT, deliberately short: teach the answer style (4-bit QLoRA)")
    start = time.time()
    sft_run = sft.train(recipes.load(recipe_path("tiny_sft.yaml"), {"output_dir": out / "sft", "overwrite": True},
                                     method="sft"))
    timings["sft"] = time.time() - start

    print("== stage 2: probe (is RL viable from the SFT adapter?), then GRPO with an exact-match reward")
    start = time.time()
    grpo_run = grpo.train(recipes.load(recipe_path("tiny_grpo.yaml"), {
        "model.adapter": sft_run, "output_dir": out / "grpo", "overwrite": True}, method="grpo"))
    timings["grpo"] = time.time() - start

    print("== stage 3: evaluate the base, the SFT start and every GRPO checkpoint on held-out questions")
    from tinyalign import doctor
    from tinyalign.evaluate import evaluate_run

    table = {row["model"]: row for row in evaluate_run(grpo_run, k=4, prompts=args.eval_prompts)}

    print("== stage 4: the doctor reads the GRPO run's logs")
    doctor.main([str(grpo_run)])

    print(f"\nheld-out accuracy, {args.eval_prompts} questions (greedy, exact match)")
    print(f"{'stage':<6} {'accuracy':>9} {'pass@4':>7} {'train time':>11}")
    for stage, name in (("base", "base"), ("sft", "start"), ("grpo", "final")):
        row, took = table[name], f"{timings[stage]:.0f} s" if stage in timings else "-"
        print(f"{stage:<6} {row['accuracy']:>8.1%} {row['pass@4']:>7.1%} {took:>11}")
    if timings["build"] >= 1:
        print(f"(building the tiny model took {timings['build']:.0f} s, once; not counted above)")
    print(f"\nper checkpoint: {grpo_run / 'eval.md'} and eval.png; bad cases: {grpo_run / 'completions.jsonl'}")
    print(f"runs in {out}/ — each holds the adapter, recipe.yaml and trainer_state.json")


if __name__ == "__main__":
    main()
