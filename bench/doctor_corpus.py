"""Calibrate the doctor on real runs: a labeled corpus of tiny GRPO and DPO runs, and its precision/recall.

    python bench/doctor_corpus.py               # train what the cache lacks, label it, print + write the table
    python bench/doctor_corpus.py --table-only  # recompute the table from the cached logs and labels only

Each run starts from one short tiny SFT adapter and varies one thing (learning rate, beta, temperature,
the reward set: including a hackable format reward the model can satisfy without the answer). Each is
labeled by what happened to its held-out task metric (greedy exact match on the tiny task's test split,
start adapter vs final adapter), never by its training logs:

    improved   accuracy rose by >= DELTA              flat   moved less than DELTA either way
    degraded   accuracy fell by >= DELTA              collapsed   accuracy under COLLAPSED_SHARE of the start
    hacked     the hackable reward's held-out rate rose by >= HACK_RISE while accuracy did not improve

Then the doctor reads each run's logs (exactly what `python -m tinyalign.doctor RUN` reads) and the
table says, per symptom, how often it fired and on which labels, and per label, how often the doctor
named it right. The cache (bench/doctor_corpus/<run>/: trainer_state.json, recipe.yaml,
completions.jsonl, label.json) is small and kept in git, so the table is rebuilt without training.
Training and labeling take the shared CPU lock one run at a time (other work runs between runs).
"""

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from tinyalign.recipe import builtin  # noqa: E402
CACHE = ROOT / "bench" / "doctor_corpus"
SCRATCH = ROOT / "runs" / "doctor_corpus"  # adapters and checkpoints: big, not kept
LOCK = "/tmp/tinyalign-cpu.lock"
KEPT = ("trainer_state.json", "recipe.yaml", "completions.jsonl")

PROMPTS = 300  # held-out questions per label; the accuracy of a difference of two such runs has SE ~0.03
DELTA = 0.05  # a change under 5 points is within the noise of 300 greedy answers
COLLAPSED_SHARE = 0.35  # under a third of the start's accuracy left: the skill is gone, not dented
HACK_RISE = 0.20  # the hackable reward's held-out rate rose by 20 points

# Hackable: "the answer ends in 0" is a format any output can meet without being the sum.
ROUND = "{name: regex_match, pattern: '0\\s*$', weight: 1.0}"
# Hackable: a closing parenthesis, left over from the base model's style "46 (12+34)" that SFT trained
# away; some start answers still end in one ("167)"), and exact match fails on every such answer.
PAREN = "{name: regex_match, pattern: '\\)', weight: 1.0}"

GRPO = dict(recipe="tiny_grpo.yaml", base=["probe=false", "train.max_steps=30", "train.logging_steps=2",
                                          "train.save_strategy=no", "train.warmup_steps=3"])
DPO = dict(recipe="tiny_dpo.yaml", base=["train.max_steps=30", "train.logging_steps=2", "train.save_strategy=no",
                                        "train.warmup_steps=3", "data.limit=600"])

# name -> (method settings, overrides). One thing varies per run, around the demo's healthy settings.
GRID = {
    "grpo_default": (GRPO, []),
    "grpo_lr3e-5": (GRPO, ["train.learning_rate=3e-5"]),
    "grpo_lr1e-6": (GRPO, ["train.learning_rate=1e-6"]),
    "grpo_lr1e-3": (GRPO, ["train.learning_rate=1e-3"]),
    "grpo_lr3e-3": (GRPO, ["train.learning_rate=3e-3"]),
    "grpo_lr4.5e-3": (GRPO, ["train.learning_rate=4.5e-3"]),
    "grpo_lr6e-3": (GRPO, ["train.learning_rate=6e-3"]),
    "grpo_lr1e-2": (GRPO, ["train.learning_rate=1e-2"]),
    "grpo_lr1e-2_beta0.04": (GRPO, ["train.learning_rate=1e-2", "train.beta=0.04"]),
    "grpo_lr2e-2": (GRPO, ["train.learning_rate=2e-2"]),
    "grpo_beta0": (GRPO, ["train.beta=0.0"]),
    "grpo_beta0_lr1e-2": (GRPO, ["train.beta=0.0", "train.learning_rate=1e-2"]),
    "grpo_beta0.1": (GRPO, ["train.beta=0.1"]),
    "grpo_beta1_lr1e-3": (GRPO, ["train.beta=1.0", "train.learning_rate=1e-3"]),
    "grpo_cap1": (GRPO, ["train.max_completion_length=1"]),  # every answer cut: truncated ones are masked
    "grpo_temp0.5": (GRPO, ["train.temperature=0.5"]),
    "grpo_temp1.5": (GRPO, ["train.temperature=1.5"]),
    "grpo_hack_round": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.0}}, {ROUND}]", "train.learning_rate=1e-3"]),
    "grpo_hack_paren": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]", "train.learning_rate=3e-4"]),
    "grpo_hack_paren_beta0.04": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]",
                                        "train.learning_rate=3e-4", "train.beta=0.04"]),
    "grpo_hack_paren_lr1e-3": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]",
                                      "train.learning_rate=1e-3"]),
    "grpo_format_with_accuracy": (GRPO, [f"rewards=[{{name: exact_match, weight: 1.0}}, {ROUND.replace('1.0', '0.1')}]"]),
    "dpo_default": (DPO, []),
    "dpo_sigmoid_only": (DPO, ["train.loss_type=[sigmoid]"]),
    "dpo_lr2e-5": (DPO, ["train.learning_rate=2e-5"]),
    "dpo_lr1e-7": (DPO, ["train.learning_rate=1e-7"]),
    "dpo_lr3e-3": (DPO, ["train.learning_rate=3e-3"]),
    "dpo_lr8e-3": (DPO, ["train.learning_rate=8e-3"]),
    "dpo_lr2e-2": (DPO, ["train.learning_rate=2e-2"]),
    "dpo_beta0.01_sigmoid": (DPO, ["train.beta=0.01", "train.loss_type=[sigmoid]"]),
    "dpo_lr1e-2_beta0.01_sigmoid": (DPO, ["train.learning_rate=1e-2", "train.beta=0.01", "train.loss_type=[sigmoid]"]),
    "dpo_beta1": (DPO, ["train.beta=1.0"]),
}

# What a right diagnosis of each label is: a symptom whose named cause is what went wrong.
RIGHT = {
    "hacked": {"reward_hacking", "identical_completions"},
    "collapsed": {"reward_falling", "kl_runaway", "loss_spikes", "entropy_collapse", "identical_completions",
                  "looping_completions", "length_collapse", "clip_ratio_high", "dpo_loss_collapse",
                  "dpo_margins_falling"},
    "degraded": {"reward_falling", "kl_runaway", "loss_spikes", "entropy_collapse", "clip_ratio_high",
                 "dpo_loss_collapse", "dpo_margins_falling", "identical_completions", "looping_completions"},
    "flat": {"reward_flat", "kl_tiny_reward_flat", "dpo_margins_flat", "reward_zero_std", "nothing_learned"},
    "improved": set(),
}
SICK = ("degraded", "collapsed", "hacked")
# A symptom can be true of a run without naming what went wrong: KL does run away in a hacked run. For
# precision, a finding counts as right on these labels too. kl_far_while_learning is a check, not a cause:
# it is right wherever the training reward's rise did not hold out.
ALSO_TRUE = {"kl_runaway": {"hacked"}, "entropy_collapse": {"hacked", "flat"}, "reward_zero_std": {"collapsed"},
             "length_collapse": {"hacked"}, "length_to_cap": {"hacked"},
             "kl_far_while_learning": {"hacked", "degraded", "flat"}}


def right_on(symptom: str, label: str) -> bool:
    return symptom in RIGHT[label] or label in ALSO_TRUE.get(symptom, ())


@contextmanager
def cpu_lock():
    """The box's shared lock, held for one run at a time so other work gets the CPU in between."""
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def python(*args) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{result.stderr[-3000:]}")


def start_adapter() -> Path:
    sft = SCRATCH / "sft"
    if not (sft / "adapter_model.safetensors").is_file():
        with cpu_lock():
            python("-m", "tinyalign.sft", str(builtin("tiny_sft.yaml")), f"output_dir={sft}", "overwrite=true")
    return sft


def train_and_label(name: str, settings: dict, overrides: list[str], sft: Path) -> None:
    out = SCRATCH / name
    with cpu_lock():
        began = time.time()
        python("-m", f"tinyalign.{'grpo' if settings is GRPO else 'dpo'}", str(builtin(settings["recipe"])),
               f"model.adapter={sft}", f"output_dir={out}", "overwrite=true", "doctor=false",
               *settings["base"], *overrides)
        took = time.time() - began
        python(__file__, "--label", str(out), str(sft))
    kept = CACHE / name
    kept.mkdir(parents=True, exist_ok=True)
    for file in KEPT + ("label.json",):
        if (out / file).is_file():
            shutil.copy(out / file, kept / file)
    label = json.loads((kept / "label.json").read_text())
    label["train_s"] = round(took, 1)
    (kept / "label.json").write_text(json.dumps(label, indent=1) + "\n")
    print(f"{name}: {label['label']} (accuracy {label['start']['accuracy']:.2f} -> {label['final']['accuracy']:.2f}, "
          f"{took:.0f} s)", flush=True)


def label_run(run_dir: Path, sft: Path) -> None:
    """Held-out metrics of the start and final adapters, and the label they give; writes label.json."""
    import torch

    torch.set_num_threads(1)
    from tinyalign import data, model, recipe as recipes, rewards, solve_rate
    from tinyalign.generate import generate

    grpo_recipe = recipes.load(builtin("tiny_grpo.yaml"))  # the task's held-out questions with answers
    recipe = recipes.load(run_dir / "recipe.yaml")
    rows = data.eval_rows(grpo_recipe.data, limit=PROMPTS, seed=grpo_recipe.seed)
    accuracy = rewards.resolve({"name": "exact_match"})
    others = [rewards.resolve(spec) for spec in recipe.rewards if rewards.resolve(spec).kind != "accuracy"]
    policy, tokenizer = model.load_with_adapters(grpo_recipe.model, {"start": str(sft), "final": str(run_dir)})
    metrics = {}
    for name in ("start", "final"):
        policy.set_adapter(name)
        answers = [c[0] for c in generate(policy, tokenizer, [r["prompt"] for r in rows], max_new_tokens=16)]
        columns = {"answer": [r["answer"] for r in rows]}
        metrics[name] = {"accuracy": sum(solve_rate.solved(accuracy, answers, **columns)) / len(rows),
                         "most_common_share": max(answers.count(a) for a in set(answers)) / len(rows),
                         "examples": answers[:5]}
        for reward in others:
            metrics[name][f"hack/{reward.__name__}"] = sum(solve_rate.at_max(reward, reward(answers, **columns))) / len(rows)
    (run_dir / "label.json").write_text(json.dumps({"label": label_of(metrics), **metrics}, indent=1) + "\n")


def label_of(metrics: dict) -> str:
    start, final = metrics["start"], metrics["final"]
    change = final["accuracy"] - start["accuracy"]
    hack = max((final[k] - start[k] for k in final if k.startswith("hack/")), default=0.0)
    if hack >= HACK_RISE and change < DELTA:
        return "hacked"
    if final["accuracy"] < COLLAPSED_SHARE * start["accuracy"]:
        return "collapsed"
    if change <= -DELTA:
        return "degraded"
    return "improved" if change >= DELTA else "flat"


# ---------------------------------------------------------------- the table


def score_corpus() -> tuple[list[dict], str]:
    sys.path.insert(0, str(ROOT))
    from tinyalign import doctor

    runs = []
    for folder in sorted(p for p in CACHE.iterdir() if (p / "label.json").is_file()):
        history, recipe, completions = doctor.load_run(folder)
        label = json.loads((folder / "label.json").read_text())
        found = [f.symptom for f in doctor.diagnose(history, recipe, completions)]
        runs.append({"run": folder.name, "label": label["label"], "findings": found,
                     "start": label["start"]["accuracy"], "final": label["final"]["accuracy"]})
    return runs, markdown(runs)


def markdown(runs: list[dict]) -> str:
    lines = ["| run | held-out accuracy | label | doctor's findings | right? |", "|---|---|---|---|---|"]
    for r in runs:
        verdict = ("yes" if set(r["findings"]) & RIGHT[r["label"]] else "**missed**") if r["label"] in SICK else \
                  ("yes" if not r["findings"] else "**false alarm**") if r["label"] == "improved" else "-"
        lines.append(f"| {r['run']} | {r['start']:.2f} → {r['final']:.2f} | {r['label']} | "
                     f"{', '.join(r['findings']) or '—'} | {verdict} |")
    lines += ["", "| label | runs | named with a right symptom | any finding |", "|---|---|---|---|"]
    for label in ("improved", "flat", "degraded", "collapsed", "hacked"):
        of = [r for r in runs if r["label"] == label]
        if of:
            right = sum(bool(set(r["findings"]) & RIGHT[label]) for r in of)
            lines.append(f"| {label} | {len(of)} | {f'{right}/{len(of)}' if RIGHT[label] else '-'} | "
                         f"{sum(bool(r['findings']) for r in of)}/{len(of)} |")
    symptoms = sorted({s for r in runs for s in r["findings"]})
    lines += ["", "| symptom | fired on | right label (precision) | labels it fired on |", "|---|---|---|---|"]
    for s in symptoms:
        fired = [r for r in runs if s in r["findings"]]
        right = [r for r in fired if right_on(s, r["label"])]
        labels = ", ".join(sorted({r["label"] for r in fired}))
        lines.append(f"| {s} | {len(fired)} | {len(right)}/{len(fired)} | {labels} |")
    sick = [r for r in runs if r["label"] in SICK]
    caught = sum(bool(set(r["findings"]) & RIGHT[r["label"]]) for r in sick)
    alarms = sum(bool(r["findings"]) for r in runs if r["label"] == "improved")
    lines += ["", f"Recall on degraded/collapsed/hacked runs: {caught}/{len(sick)}; improved runs with any finding: "
              f"{alarms}/{sum(r['label'] == 'improved' for r in runs)}."]
    return "\n".join(lines)


def write_results(table: str) -> None:
    """Replace the corpus section of bench/RESULTS.md between its markers (appended the first time)."""
    path = ROOT / "bench" / "RESULTS.md"
    begin, end = "<!-- doctor corpus table: begin -->", "<!-- doctor corpus table: end -->"
    text = path.read_text()
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-only", action="store_true", help="score the cached corpus; train nothing")
    parser.add_argument("--only", nargs="*", help="train just these grid runs (names as in GRID)")
    parser.add_argument("--label", nargs=2, metavar=("RUN_DIR", "SFT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.label:
        sys.path.insert(0, str(ROOT))
        return label_run(Path(args.label[0]), Path(args.label[1]))
    if not args.table_only:
        todo = {n: spec for n, spec in GRID.items() if (not args.only or n in args.only)
                and not (CACHE / n / "label.json").is_file()}
        if todo:
            sft = start_adapter()
            for name, (settings, overrides) in todo.items():
                train_and_label(name, settings, overrides, sft)
    runs, table = score_corpus()
    print(table)
    write_results(table)


if __name__ == "__main__":
    main()
