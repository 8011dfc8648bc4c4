"""python -m tinyalign.evaluate RECIPE_OR_RUN [--checkpoints all|LIST] [--k K] [--prompts N] [--out DIR]
                                            [--accuracy REWARD]

Scores the base model, every checkpoint-* and the final adapter of a run on the held-out split by
the task metric, not the loss (which keeps falling long after the answers stop improving):

    accuracy     share of greedy answers at the top score of the recipe's accuracy reward (or --accuracy's;
                 an SFT or DPO recipe has none: exact match with data.answer)
    pass@K       share of prompts with at least one of K sampled answers right (--k > 1)
    reward       GRPO recipes: the weighted total and each reward's mean, on the greedy answers
    format       share of greedy answers at the top score of every format reward (if there are any)
    mean_length  greedy answer length in tokens; truncated: share cut off at max_new_tokens

Writes eval.csv, eval.md and eval.png into the run directory (or --out) and names the best
checkpoint. The base is loaded once; checkpoints are swapped in and out as LoRA adapters.
"""

import argparse
import csv
import filecmp
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli, positive_int
from tinyalign.measure import solve_rate
from tinyalign.models.generate import generation_settings

FILES = ("eval.csv", "eval.md", "eval.png")
RATES = ("accuracy", "sampled", "format", "truncated")  # shown as percentages; so is pass@K
# Per item, in the held-out rows' order, so two models compare item by item (paired): the greedy answer's
# verdict, and the share of the k sampled answers that are right. Kept in the returned table; never in
# the files or on the console.
SOLVED, SAMPLES_RIGHT = "solved", "samples_right"
PER_ITEM = (SOLVED, SAMPLES_RIGHT)


@dataclass
class Entry:
    """One model to score: the base (no adapter) or an adapter folder, placed at a training step."""

    name: str
    step: int
    adapter: str | None = None
    same_as: str | None = None  # byte-identical to this entry's adapter: reuse its scores


# ---------------------------------------------------------------- what to score


def locate(target) -> tuple:
    """(recipe, run directory) from a run directory or a recipe file (whose output_dir is the run)."""
    from tinyalign.training import run

    recipe, run_dir = run.load_target(target)
    if run_dir is not None:
        return recipe, run_dir
    run_dir = Path(recipe.output_dir)
    if not run_dir.is_dir():
        raise UserError(f"{target} trains into {run_dir}, which does not exist yet; train first: "
                        f"python -m tinyalign.{recipe.method} {target}")
    return recipe, run_dir


def entries(recipe, run_dir: Path, which: str = "all") -> list[Entry]:
    """The base, the run's starting adapter (if any), its checkpoints and its final adapter, by step."""
    from tinyalign.training import run

    found = [Entry("base", 0)]
    if recipe.model.adapter:
        found.append(Entry("start", 0, recipe.model.adapter))
    found += [Entry(c.name, int(c.name.split("-")[-1]), str(c)) for c in run.checkpoints(run_dir)]
    if run.is_finished(run_dir):
        state = run_dir / "trainer_state.json"
        step = json.loads(state.read_text()).get("global_step", 0) if state.is_file() else found[-1].step
        twin = next((e for e in found if e.step == step and e.adapter and same_weights(e.adapter, run_dir)), None)
        found.append(Entry("final", step, str(run_dir), twin.name if twin else None))
    if len(found) == 1 + bool(recipe.model.adapter):
        raise UserError(f"{run_dir} has no checkpoint-* and no final adapter to evaluate; train first: "
                        f"python -m tinyalign.{recipe.method} RECIPE output_dir={run_dir}")
    if which == "all":
        return found
    names = {e.name: e for e in found} | {str(e.step): e for e in found if e.name.startswith("checkpoint-")}
    chosen = [found[0]]
    for item in (i.strip() for i in which.split(",") if i.strip()):
        if item not in names:
            raise UserError(f"--checkpoints: no {item!r} in {run_dir}; there are: {', '.join(e.name for e in found)}")
        chosen += [names[item]] if names[item] not in chosen else []
    for e in chosen:  # a reused score needs its twin scored too
        if e.same_as and e.same_as not in {c.name for c in chosen}:
            e.same_as = None
    return chosen


def same_weights(adapter_a, adapter_b) -> bool:
    from tinyalign.training.run import FINAL

    a, b = Path(adapter_a) / FINAL, Path(adapter_b) / FINAL
    return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)


# ---------------------------------------------------------------- one model's metrics


def model_metrics(policy, tokenizer, rows: list[dict], rewards: list, weights: list[float], accuracy, settings: dict,
          k: int, batch_size: int, seed: int, name: str, pass_k_prompts: int | None = None) -> dict:
    """The metrics of one model (whichever adapter is active) on `rows` ({prompt, answer}); pass@k on the
    first `pass_k_prompts` of them (all by default): k samples each cost k times a greedy answer."""
    from transformers import set_seed

    from tinyalign.models.generate import generate

    prompts, answers = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    max_new = settings["max_new_tokens"]
    greedy = [c[0] for c in generate(policy, tokenizer, prompts, max_new_tokens=max_new, batch_size=batch_size,
                                     desc=f"{name}: greedy")]
    ids = [tokenizer(c, add_special_tokens=False).input_ids for c in greedy]
    columns = {"answer": answers, "prompts": prompts, "completion_ids": ids}
    right = solve_rate.solved(accuracy, greedy, **columns)
    metrics = {"accuracy": None if right is None else mean(right)}

    if k > 1:
        set_seed(seed)  # every model draws from the same random stream: a fair comparison
        prompts, answers = prompts[:pass_k_prompts], answers[:pass_k_prompts]
        samples = generate(policy, tokenizer, prompts, k=k, max_new_tokens=max_new, batch_size=batch_size,
                           temperature=settings["temperature"] or 1.0, top_p=settings["top_p"], desc=f"{name}: pass@{k}")
        flat = [c for group in samples for c in group]
        repeated = {"answer": [a for a in answers for _ in range(k)], "prompts": [p for p in prompts for _ in range(k)],
                    "completion_ids": [tokenizer(c, add_special_tokens=False).input_ids for c in flat]}
        solved = solve_rate.solved(accuracy, flat, **repeated)
        metrics[f"pass@{k}"] = None if solved is None else mean(any(solved[i:i + k]) for i in range(0, len(flat), k))
        # the share of sampled answers that are right: what GRPO's reward trains, and it can rise while
        # greedy accuracy, the mode's answer, stays put
        metrics["sampled"] = None if solved is None else mean(solved)
        if solved is not None:
            metrics[SAMPLES_RIGHT] = [mean(solved[i:i + k]) for i in range(0, len(flat), k)]

    if rewards:
        scores = {f.__name__: f(greedy, **columns) for f in rewards}
        metrics["reward"] = mean(sum(w * (s[i] or 0.0) for w, s in zip(weights, scores.values()))
                                 for i in range(len(greedy)))
        for f in rewards:
            known = [s for s in scores[f.__name__] if s is not None]
            metrics[f"reward/{f.__name__}"] = mean(known) if known else None
        formats = [f for f in rewards if f.kind == "format"]
        if formats:
            compliant = [solve_rate.at_max(f, scores[f.__name__]) for f in formats]
            metrics["format"] = mean(all(flags) for flags in zip(*compliant))
    metrics["mean_length"] = mean(map(len, ids))
    metrics["truncated"] = mean(len(i) >= max_new for i in ids)
    if right is not None:
        metrics[SOLVED] = right
    return metrics


# ---------------------------------------------------------------- the run


def evaluate_run(target, checkpoints: str = "all", k: int = 1, prompts: int = 200, out=None,
                 batch_size: int = 64, pass_k_prompts: int | None = None, accuracy: str | None = None) -> list[dict]:
    """Score a run's base, checkpoints and final adapter; write eval.csv/.md/.png; return the rows.
    `accuracy` names the reward that says "solved" (default: the recipe's accuracy reward, else exact_match).

    `target` is a run directory or a recipe file; `checkpoints` is "all" or a comma list (20,40,final).
    """
    from tinyalign import rewards as reward_registry
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model

    recipe, run_dir = locate(target)
    todo = entries(recipe, run_dir, checkpoints)
    out = files.check_folder_out(out) if out else run_dir
    if recipe.method == "rm":  # a reward model is judged on its held-out pairs, not by generating
        from tinyalign.measure.reward_model import evaluate_checkpoints

        table = evaluate_checkpoints(recipe, [(e.name, e.step, e.adapter) for e in todo if e.adapter])
        out.mkdir(parents=True, exist_ok=True)
        write_csv(table, out / "eval.csv")
        print(markdown_table(table))
        return table
    if k < 1 or prompts < 1:
        raise UserError("--k and --prompts must be at least 1")
    rows = data.eval_rows(recipe.data, limit=prompts, seed=recipe.seed)
    if not (recipe.data.test_split or recipe.data.test_size):
        print(f"note: {recipe.data.source} has no held-out split in the recipe; scoring training prompts")
    solved_by = solve_rate.accuracy_reward(recipe, accuracy)
    if not accuracy and not reward_registry.accuracy_rewards(recipe.rewards) and recipe.data.answer:
        # no reward of the recipe says "right" (an SFT or DPO recipe names none): exact_match stands in
        print("note: solved = exact match with data.answer; --accuracy math_accuracy reads the final number "
              "of a worked answer")
    rewards = [reward_registry.resolve(spec) for spec in recipe.rewards]
    weights = [float(spec.get("weight", 1.0)) for spec in recipe.rewards]
    settings = generation_settings(recipe)

    start = time.time()
    policy, tokenizer = model.load_with_adapters(recipe.model, {})  # the base, once
    results: dict[str, dict] = {}
    active = None
    for entry in todo:  # one bar at a time: each model's generation has its own, then one line per model
        if entry.same_as:
            results[entry.name] = results[entry.same_as]
            print(f"{entry.name}: the same weights as {entry.same_as}")
            continue
        if entry.adapter:
            folder = model.adapter_dir(entry.adapter)
            model.check_adapter_base(folder, recipe.model.name)
            slot = entry.name.replace("-", "_")
            policy = model.use_adapter(policy, folder, slot, replace=active)  # the base weights stay put
            policy.eval()
            active = slot
        results[entry.name] = model_metrics(policy, tokenizer, rows, rewards, weights, solved_by, settings, k,
                                            batch_size, recipe.seed, entry.name, pass_k_prompts)
        print(f"{entry.name}: " + ", ".join(f"{key} {fmt(key, v)}" for key, v in results[entry.name].items()
                                            if key not in PER_ITEM))  # one line a model
    table = [{"model": e.name, "step": e.step, **results[e.name]} for e in todo]
    took = time.time() - start

    out.mkdir(parents=True, exist_ok=True)
    metric = task_metric(table)
    summary = best_line(table, metric, recipe.model.adapter)
    write_csv(table, out / "eval.csv")
    header = (f"{len(rows)} held-out prompts of {recipe.data.source}; greedy, at most {settings['max_new_tokens']} "
              f"new tokens" + (f"; pass@{k} sampled at temperature {settings['temperature'] or 1.0}"
                 f" on {min(pass_k_prompts or len(rows), len(rows))} of them" if k > 1 else ""))
    write_markdown(table, out / "eval.md", f"Evaluation of {run_dir}", header, summary)
    plot(table, metric, out / "eval.png", str(run_dir))
    print(f"\n{markdown_table(table)}\n\n{summary}")
    print(f"scored {len(todo)} models on {len(rows)} prompts in {took:.0f} s; "
          f"wrote {', '.join(str(out / f) for f in FILES)}")
    return table


def task_metric(table: list[dict]) -> str:
    """Accuracy when the rows have references; otherwise (e.g. judge-only rewards) the total reward."""
    return "accuracy" if any(r.get("accuracy") is not None for r in table) else "reward"


def trained_rows(table: list[dict]) -> list[dict]:
    """The run's own checkpoints by step; the final adapter only when it is not one of them."""
    checkpoints = [r for r in table if r["model"].startswith("checkpoint-")]
    final = [r for r in table if r["model"] == "final" and all(c["step"] != r["step"] for c in checkpoints)]
    return checkpoints + final


def best_line(table: list[dict], metric: str, start_adapter: str | None = None) -> str:
    """Name the best trained checkpoint by the task metric, what it gains over the last one, and whether it
    beats where training began (`start_adapter`: the adapter the run continued, named when it should be kept)."""
    trained = [r for r in trained_rows(table) if r.get(metric) is not None]
    if not trained:
        return f"no trained checkpoint has a {metric} to compare"
    last = trained[-1]
    best = max(reversed(trained), key=lambda r: r[metric])  # ties go to the later one: no false "beats"
    words = f"best by {metric}: {best['model']} (step {best['step']}, {fmt(metric, best[metric])})"
    if best is last or best[metric] <= last[metric]:
        words += "; the last checkpoint is the best one"
    else:
        gain = best[metric] - last[metric]
        gain = f"{gain * 100:.1f} points" if metric in RATES else f"{gain:.3f}"
        words += f", {gain} above the last ({last['model']}, {fmt(metric, last[metric])}): use {best['model']}"
    # where training began: the adapter it continued, else the base
    origins = [r for name in ("start", "base") for r in table if r["model"] == name]
    row = next((r for r in origins if r.get(metric) is not None and r[metric] >= best[metric]), None)
    if row:
        keep = f": keep {start_adapter}" if row["model"] == "start" and start_adapter else ""
        words += f"; no checkpoint beats the {row['model']} ({fmt(metric, row[metric])}){keep}"
    # the gain over where training began, on the same problems
    start = next((r for r in origins if SOLVED in r), None)
    if start is not None and SOLVED in best and metric == "accuracy":
        words += f"; over the {start['model']}: {paired_gain(start, best)}"
    return words


def paired_gain(before: dict, after: dict, per_item: str = SOLVED) -> str:
    """How far `after` is above `before` on the same held-out items, and whether that is more than noise:
    by the greedy verdicts (SOLVED), or by the share of right sampled answers (SAMPLES_RIGHT)."""
    diff, low, high = solve_rate.paired_interval95(before[per_item], after[per_item])
    verdict = "above it" if low > 0 else "below it" if high < 0 else "not told apart"
    return f"{100 * diff:+.1f} points (paired 95 % interval {100 * low:+.1f} to {100 * high:+.1f}: {verdict})"


# ---------------------------------------------------------------- writing


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key in RATES or key.startswith("pass@"):
        return f"{value:.1%}"
    if key == "mean_length":
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def columns_of(table: list[dict]) -> list[str]:
    """The table's figures: every key but the per-item ones."""
    return list(dict.fromkeys(key for row in table for key in row if key not in PER_ITEM))


def write_csv(table: list[dict], path: Path) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns_of(table), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    files.write_atomically(path, text.getvalue())


def markdown_table(table: list[dict]) -> str:
    keys = columns_of(table)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(key, row.get(key)) for key in keys) + " |" for row in table]
    return "\n".join(lines)


def write_markdown(table: list[dict], path: Path, title: str, header: str, summary: str) -> None:
    files.write_atomically(path, f"# {title}\n\n{header}\n\n{markdown_table(table)}\n\n**{summary}**\n")


def plot(table: list[dict], metric: str, path: Path, title: str) -> None:
    """Each metric against training step; the base (and starting adapter) as dashed reference lines."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    keys = [key for key in columns_of(table) if key not in ("model", "step")]
    keys = [key for key in keys if any(row.get(key) is not None for row in table)]
    trained = trained_rows(table)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in trained if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label="checkpoints")
        for ref, style in (("base", "--"), ("start", ":")):
            row = next((r for r in table if r["model"] == ref and r.get(key) is not None), None)
            if row:
                ax.axhline(row[key], linestyle=style, color="grey", label=ref)
        if key == metric and points:
            step, value = max(reversed(points), key=lambda p: p[1])
            ax.plot([step], [value], marker="*", markersize=16, color="tab:orange", label="best")
        if key in RATES or key.startswith("pass@"):
            ax.set_ylim(-0.03, 1.03)  # shares on a fixed scale, so a flat line looks flat
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    files.write_atomically(path, image.getvalue())  # like eval.csv and eval.md: the old plot or the new, never half


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.evaluate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="RECIPE_OR_RUN", help="a run directory, or the recipe that trained it")
    parser.add_argument("--checkpoints", default="all", help="all (default), or a comma list such as 20,40,final")
    parser.add_argument("--k", type=positive_int, default=1, help="K for pass@K by sampling (default 1: greedy only)")
    parser.add_argument("--prompts", type=positive_int, default=200, help="held-out prompts to score (default 200)")
    parser.add_argument("--pass-k-prompts", type=positive_int,
                        help="sample pass@K on only the first N held-out prompts (default: all of them)")
    parser.add_argument("--out", help="folder for eval.csv/.md/.png (default: the run directory)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="completions generated per batch (default 64)")
    parser.add_argument("--accuracy", metavar="REWARD", help="the reward that says an answer is right (default: the "
                        "recipe's accuracy reward, else exact_match), e.g. math_accuracy for worked answers")
    args = parser.parse_args(argv)
    evaluate_run(args.target, args.checkpoints, args.k, args.prompts, args.out, args.batch_size, args.pass_k_prompts,
                 args.accuracy)


if __name__ == "__main__":
    main()
