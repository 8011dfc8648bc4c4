"""python -m tinyalign.probe RECIPE [--prompts N] [--k K] [--out DIR] — is RL viable from this model?

Samples K answers per prompt from the recipe's starting model (base, or `model.adapter`) with its
generation settings, scores them with its rewards, and gives a verdict with the reason:

    viable      some prompts solved, some not: GRPO has signal to climb
    SFT first   pass@1 well under 20 %: RL will mostly see failures; teach the format/skill first
    no signal   pass@K ~ 0: every group scores the same, GRPO's advantages are all zero
    too easy    nearly everything solved: nothing left to learn from these prompts
"""

import json
from pathlib import Path
from statistics import mean

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, cli, positive_int

SFT_FIRST_BELOW = 0.20  # pass@1
NO_SIGNAL_BELOW = 0.02  # pass@K
TOO_EASY_ABOVE = 0.95  # pass@1


def verdict(pass_1: float, pass_k: float, k: int) -> tuple[str, str]:
    if pass_k < NO_SIGNAL_BELOW:
        return "no signal", f"pass@{k} is {pass_k:.1%}: almost no prompt is ever solved"
    if pass_1 > TOO_EASY_ABOVE:
        return "too easy", f"pass@1 is {pass_1:.1%}: nearly every answer is already right"
    if pass_1 < SFT_FIRST_BELOW:
        return "SFT first", f"pass@1 is {pass_1:.1%} (< {SFT_FIRST_BELOW:.0%}): SFT, simpler prompts or a bigger model"
    return "viable", f"pass@1 {pass_1:.1%}, pass@{k} {pass_k:.1%}: enough solved and unsolved answers to learn from"


def run(recipe, prompts: int = 64, k: int = 8, out_dir=None) -> dict:
    """Probe `recipe`'s starting model; the report is also written to out_dir/probe.json."""
    from tinyalign import rewards
    from tinyalign.data import loading as data
    from tinyalign.data.messages import message_text
    from tinyalign.measure import solve_rate
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generate, generation_settings

    rows, _ = data.splits(recipe.data, recipe.seed)  # training prompts only
    rows = rows.select(range(min(prompts, len(rows))))
    to_row = data.to_rows(recipe.data, "grpo")
    rows = [to_row(r) for r in rows]
    reward_fns = [rewards.resolve(spec) for spec in recipe.rewards] or [solve_rate.accuracy_reward(recipe)]
    weights = [float(spec.get("weight", 1.0)) for spec in recipe.rewards] or [1.0]
    success = next((f for f in reward_fns if f.kind == "accuracy"), None)
    settings = generation_settings(recipe)

    adapters = {"start": recipe.model.adapter} if recipe.model.adapter else {}
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    completions = generate(policy, tokenizer, [r["prompt"] for r in rows], k=k, desc="probe", **settings)

    del policy  # GRPO loads its own trainable copy next; don't hold two on the GPU
    free_memory()
    flat = [c for group in completions for c in group]
    answers = [r["answer"] for r in rows for _ in range(k)]
    ids = [tokenizer(c, add_special_tokens=False).input_ids for c in flat]
    scores = {f.__name__: f(flat, answer=answers, completion_ids=ids, prompts=[r["prompt"] for r in rows for _ in range(k)])
              for f in reward_fns}
    total = [sum(w * (s[i] or 0.0) for w, s in zip(weights, scores.values())) for i in range(len(flat))]
    if success is not None:
        solved = solve_rate.at_max(success, scores[success.__name__])
    else:  # no accuracy reward: "solved" = the best total reward the rewards allow
        best = sum(w * f.max_score for w, f in zip(weights, reward_fns))
        solved = [t >= best for t in total]
    groups = [range(i * k, (i + 1) * k) for i in range(len(rows))]
    pass_1 = mean(solved)
    pass_k = mean(any(solved[i] for i in g) for g in groups)
    name, reason = verdict(pass_1, pass_k, k)
    report = {
        "verdict": name, "reason": reason, "prompts": len(rows), "k": k,
        "pass@1": pass_1, f"pass@{k}": pass_k,
        "success_reward": success.__name__ if success else "all rewards at max",
        "reward_means": {n: mean(x for x in s if x is not None) if any(x is not None for x in s) else None
                         for n, s in scores.items()},
        "same_score_groups": mean(len({total[i] for i in g}) == 1 for g in groups),
        "truncated": mean(len(i) >= settings["max_new_tokens"] for i in ids),
        "mean_length": mean(map(len, ids)),
        "settings": settings,
        "per_prompt": [{"prompt": message_text(rows[i]["prompt"]), "pass_rate": mean(solved[j] for j in g)}
                       for i, g in enumerate(groups)],
        "examples": [{"prompt": message_text(rows[i]["prompt"]), "answer": rows[i]["answer"],
                      "completions": completions[i][:3]} for i in range(min(5, len(rows)))],
    }
    if out_dir:
        files.write_atomically(Path(out_dir) / "probe.json", json.dumps(report, indent=2, ensure_ascii=False))
    print(format_report(report))
    return report


def run_once(recipe, out_dir) -> dict:
    """`run` in one process: under `accelerate launch` the main process probes while the others
    wait, then read its probe.json, so every process reaches the same verdict from one probe."""
    from accelerate import PartialState

    from tinyalign.models.loading import has_cuda

    state = PartialState(cpu=not has_cuda())  # as the Trainer will set it up: without it CPU ranks see no peers
    with state.main_process_first():
        if state.is_main_process:
            return run(recipe, out_dir=out_dir)
    return json.loads((Path(out_dir) / "probe.json").read_text())


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def format_report(r: dict) -> str:
    k = r["k"]
    lines = [f"probe: {r['prompts']} prompts x {k} samples (temperature {r['settings']['temperature']})",
             f"  pass@1 {r['pass@1']:.1%}   pass@{k} {r[f'pass@{k}']:.1%}   (success = {r['success_reward']})"]
    lines += [f"  {name:<16} mean {m:.3f}" for name, m in r["reward_means"].items() if m is not None]
    lines += [f"  groups whose {k} answers all score the same: {r['same_score_groups']:.1%} (they teach GRPO nothing)",
              f"  truncated {r['truncated']:.1%}   mean length {r['mean_length']:.1f} tokens",
              f"verdict: {r['verdict']} — {r['reason']}"]
    return "\n".join(lines)


@cli
def main(argv=None):
    from tinyalign.config import recipe as recipes
    from tinyalign.training import run as runs

    parser = ArgumentParser(prog="python -m tinyalign.probe", description=__doc__.splitlines()[0])
    recipes.add_arguments(parser)
    parser.add_argument("--prompts", type=positive_int, default=64, help="how many training prompts to sample (default 64)")
    parser.add_argument("--k", type=positive_int, default=8, help="samples per prompt (default 8)")
    parser.add_argument("--out", help="folder for probe.json (default: print only)")
    args = parser.parse_args(argv)
    if args.out:
        files.check_folder_out(args.out)
    recipe = runs.resolve(recipes.load(args.recipe, args.overrides))  # GRPO's sampling settings, as it would train
    run(recipe, prompts=args.prompts, k=args.k, out_dir=args.out)


if __name__ == "__main__":
    main()
