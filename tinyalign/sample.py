"""python -m tinyalign.sample RECIPE_OR_RUN [key=value ...] --k 8 --min-reward R --out best.jsonl

Rejection sampling: K answers per training prompt from the recipe's model (its `model.adapter`, a
run directory's final adapter, or --adapter), scored with the recipe's rewards (the weighted total;
an SFT recipe is scored by exact match against its completion). The best answer per prompt is kept
when it scores at least R (default: every reward at its top score), duplicates dropped, and written
as an SFT dataset: the columns the recipe's templates read, plus `completion`. With --standardize each
reward is first put in standard units over all the drawn answers, so rewards on different scales (two
learned ones: a reward model and a DPO run's likelihood) count as their weights say, and so is their
weighted total: the default bar becomes 0, a prompt's best answer kept when it beats the average drawn
answer, and --min-reward 1 keeps those one standard deviation above it. --top 0.5 keeps, of the prompts
that pass, the half whose best answer scored highest. An SFT recipe trains on it directly with

    data: {source: best.jsonl, prompt: "{question}", completion: "{completion}"}

This is the cold start before GRPO (sample -> SFT -> GRPO), and the step after it. Repeating it
over and over homogenises the answers: once or twice is where it helps.
"""

import argparse
import json
import math
from collections import Counter

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli, positive_int


def load_target(target, overrides=()) -> tuple:
    """(recipe, adapter to sample from or None) for a recipe file or a run directory (its final adapter)."""
    from tinyalign.training import run

    recipe, run_dir = run.load_target(target, overrides)
    if run_dir is None:
        return recipe, recipe.model.adapter
    if not run.is_finished(run_dir):
        raise UserError(f"{run_dir} has no final adapter yet; pass --adapter {run_dir}/checkpoint-N")
    return recipe, str(run_dir)


def sample(recipe, out, k: int = 8, min_reward: float | None = None, prompts: int | None = None,
           adapter: str | None = None, batch_size: int = 64, hint: bool = True, drawn: tuple | None = None,
           standardize: bool = False, top: float | None = None) -> dict:
    """Sample, score, keep the best answer per prompt; write `out` (JSONL). Returns {kept, total, out, ...,
    drawn, rows, totals}: `drawn` (the answers and the tokenizer) passed back with the same model, prompts and
    k scores them under another recipe's rewards without sampling again; `rows` are the prompts' dataset rows
    and `totals` every answer's weighted reward, k per row in `drawn`'s order.

    `top`: of the prompts whose best answer passes the bar, keep this share, those whose best scored highest.
    `hint`: end with the data section an SFT recipe trains on it with (a caller that trains on it itself: off)."""
    from tqdm.auto import tqdm
    from transformers import set_seed

    from tinyalign import rewards
    from tinyalign.data import loading as data
    from tinyalign.measure import solve_rate
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generate, generation_settings

    spec = recipe.data
    if not spec.prompt:
        raise UserError("sample builds prompts from data.prompt (a template such as \"{question}\"); set it")
    if k < 1 or (prompts is not None and prompts < 1):
        raise UserError("--k and --prompts must be at least 1")
    if top is not None and not 0 < top <= 1:
        raise UserError(f"--top is a share of the prompts, above 0 and at most 1, not {top:g}")
    out = files.check_jsonl_out(out, columns=("completion", "reward"), inputs=[spec.source])
    reward_fns = [rewards.resolve(s) for s in recipe.rewards] or [solve_rate.accuracy_reward(recipe)]
    weights = [float(s.get("weight", 1.0)) for s in recipe.rewards] or [1.0]
    top_total = 0.0 if standardize else sum(w * f.max_score for w, f in zip(weights, reward_fns))
    min_reward = top_total if min_reward is None else min_reward

    # ── prompts: the training split only; a held-out share carved by test_size stays held out
    raw, _ = data.splits(spec, recipe.seed)
    data.check_columns(raw, spec, recipe.method)
    if spec.limit:
        raw = raw.select(range(min(spec.limit, len(raw))))
    if prompts and prompts < len(raw):
        raw = raw.shuffle(seed=recipe.seed).select(range(prompts))
    rows = list(raw)
    reference = spec.answer or spec.completion  # GRPO's answer, else the SFT target
    chats = [data.prompt_messages(spec, row) for row in rows]

    # ── sample K answers per prompt
    if drawn is None:
        policy, tokenizer = model.load_with_adapters(recipe.model, {"policy": adapter} if adapter else {})
        settings = generation_settings(recipe)
        set_seed(recipe.seed)
        drawn = generate(policy, tokenizer, chats, k=k, max_new_tokens=settings["max_new_tokens"],
                         temperature=settings["temperature"] or 1.0, top_p=settings["top_p"], batch_size=batch_size,
                         desc=f"sampling {k} per prompt"), tokenizer
    groups, tokenizer = drawn
    if len(groups) != len(rows) or any(len(group) != k for group in groups):
        raise ValueError("drawn answers come from another set of prompts or another k")

    # ── score: the weighted total of the recipe's rewards, as GRPO would see it
    flat = [c for group in groups for c in group]
    columns = {"answer": [data.fill(reference, row, "answer") if reference else None for row in rows for _ in range(k)],
               "prompts": [chat for chat in chats for _ in range(k)],
               "completion_ids": [tokenizer(c, add_special_tokens=False).input_ids for c in flat]}
    # A learned reward takes minutes over thousands of answers (a rule, a blink): name the phase while it runs.
    scoring = tqdm(reward_fns, desc=f"scoring {len(flat)} answers", unit="reward", leave=False)
    scores = [f(flat, **columns) for f in scoring]
    if standardize:
        scores = [standard_units(s) for s in scores]
    totals = [sum(w * (s[i] or 0.0) for w, s in zip(weights, scores)) for i in range(len(flat))]
    if standardize:  # and the total too, so that a bar of 1 is one standard deviation above the average answer
        totals = standard_units(totals)

    # ── keep the best per prompt; among equal scores, the answer the model gave most often
    written = [c for c in data.template_columns(spec.prompt) + data.template_columns(reference) if c != "completion"]
    written = list(dict.fromkeys(written))
    kept, seen = [], set()
    for i, row in enumerate(rows):
        group = flat[i * k:(i + 1) * k]
        counts = Counter(group)
        best = max(range(k), key=lambda j: (totals[i * k + j], counts[group[j]]))
        total, answer = totals[i * k + best], group[best]
        key = (json.dumps(chats[i], sort_keys=True), answer)
        if total < min_reward or not answer.strip() or key in seen:
            continue
        seen.add(key)
        kept.append({**{c: row[c] for c in written}, "completion": answer, "reward": total})
    passed, surest = len(kept), ""
    if top is not None:
        kept = [kept[i] for i in surest_share([row["reward"] for row in kept], top)]
        surest = f"; the surest {top:.0%} of them: {len(kept)}"

    # ── write atomically: a killed run leaves no half a dataset behind
    files.write_jsonl(out, kept)

    report = {"kept": len(kept), "total": len(rows), "out": str(out), "k": k, "min_reward": min_reward,
              "samples_at_bar": sum(t >= min_reward for t in totals) / max(1, len(totals)), "drawn": drawn,
              "rows": rows, "totals": totals}
    if min_reward == float("-inf"):  # no bar: every prompt's best (less empty and duplicate answers)
        print(f"kept the best of {k} answers for {passed}/{len(rows)} prompts{surest}; wrote {out}")
    else:
        units = " standard units" if standardize else ""
        print(f"kept {passed}/{len(rows)} prompts ({passed / max(1, len(rows)):.1%}) whose best of {k} answers scored "
              f">= {min_reward:g}{units}; {report['samples_at_bar']:.1%} of all samples did{surest}; wrote {out}")
    if hint:
        system = f", system: {json.dumps(spec.system)}" if spec.system else ""
        print(f"train on it with  data: {{source: {out}, prompt: {json.dumps(spec.prompt)}, "
              f"completion: \"{{completion}}\"{system}}}")
    return report


def surest_share(scores: list[float], share: float) -> list[int]:
    """The indices of the highest `share` of `scores` (rounded up), in their own order."""
    highest = sorted(range(len(scores)), key=lambda i: -scores[i])[:math.ceil(share * len(scores))]
    return sorted(highest)


def standard_units(scores: list) -> list:
    """Scores as (score - mean) / spread over the scored answers; an unscored one (None) stays None, and a
    reward that scored every answer alike gives 0 to each (it tells none apart)."""
    from statistics import fmean, pstdev

    known = [x for x in scores if x is not None]
    if not known:
        return scores
    mean, spread = fmean(known), pstdev(known)
    return [None if x is None else (x - mean) / spread if spread else 0.0 for x in scores]


@cli
def main(argv=None):
    from tinyalign.config import recipe as recipes

    parser = ArgumentParser(prog="python -m tinyalign.sample", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    recipes.add_arguments(parser, run_dir=True)  # a recipe samples its model.adapter (or base), a run its final adapter
    parser.add_argument("--k", type=positive_int, default=8, help="answers sampled per prompt (default 8)")
    parser.add_argument("--min-reward", type=float, help="keep a prompt's best answer if its weighted reward "
                                                         "is at least this (default: every reward at its top score)")
    parser.add_argument("--standardize", action="store_true",
                        help="each reward, and their weighted total, in standard units over the drawn answers "
                             "(then the default bar is 0: better than the average answer; 1: a standard deviation "
                             "above it)")
    parser.add_argument("--top", type=float, help="of the prompts whose best answer passes the bar, keep this share: "
                                                  "those whose best scored highest (e.g. 0.5)")
    parser.add_argument("--out", required=True, help="the JSONL file to write, e.g. best.jsonl")
    parser.add_argument("--prompts", type=positive_int, help="sample this many training prompts (default: all)")
    parser.add_argument("--adapter", help="sample from this adapter instead (a run directory or checkpoint-N)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="completions generated per batch (default 64)")
    args = parser.parse_args(argv)
    recipe, adapter = load_target(args.recipe, args.overrides)
    sample(recipe, args.out, args.k, args.min_reward, args.prompts, args.adapter or adapter, args.batch_size,
           standardize=args.standardize, top=args.top)


if __name__ == "__main__":
    main()
