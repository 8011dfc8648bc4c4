"""python -m tinyalign.demo_real — the practice end to end on a real model, offline, on CPU.

    SmolLM2-135M-Instruct --probe--> "SFT first" --SFT on worked solutions--> adapter --probe--> viable?
    --GRPO, answer-correctness reward--> adapter, then every checkpoint evaluated on held-out word
    problems whose numbers training never saw, and the doctor reads the logs.

The model ships in a registry package (`pkg:smollm2-135m-instruct`), so nothing is downloaded from a
model hub. The task is `tiny:word-problems` (tinyalign/data/word_problems.py): one- and two-step problems,
several phrasings; held-out numbers (10-19, 30-39) never appear in training (2-9, 20-29, 40-49).

SFT on the task's worked solutions, not on the model's own best answers (`python -m tinyalign.sample`):
this base rarely answers right and rambles past the token cap, so sampling its answers is slow and keeps
few (bench/RESULTS.md, "The real-model demo, stage by stage"), while a teacher's worked solution ("32 - 15
= 17. The answer is 17.") teaches the form in seconds; RL then sharpens what the form lets the model compute.
"""

import time

from tinyalign.core.errors import ArgumentParser, UserError, cli, positive_int

SFT_RECIPE, GRPO_RECIPE = "smollm2_word_sft.yaml", "smollm2_word_grpo.yaml"
# quick looks, a verdict and not a measurement: the base's rambling answers are the slowest to sample
PROBE_PROMPTS, PROBE_K_BASE, PROBE_K_SFT = 32, 4, 8
PASS_K, PASS_K_PROMPTS = 4, 64  # k samples cost k greedy answers: pass@k on the first 64 held-out


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.demo_real", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo-real", help="where the demo's runs go (default: runs/demo-real)")
    parser.add_argument("--eval-prompts", type=positive_int, default=300,
                        help="held-out problems to score (default 300, all of them)")
    args = parser.parse_args(argv)
    timings = {}

    from tinyalign import doctor, grpo, probe, sft
    from tinyalign.config import recipe as recipes
    from tinyalign.core import console, files
    from tinyalign.data import word_problems
    from tinyalign.evaluate import evaluate_run
    from tinyalign.training import run

    out = files.check_folder_out(args.out)  # checked before the first stage writes anything into it
    console.quiet()
    grpo_recipe = str(recipes.builtin(GRPO_RECIPE))  # shipped in the package: the demo runs from any folder

    print("== stage 1: probe the base: can it already solve the task?")
    start = time.time()
    base = recipes.load(grpo_recipe, {"model.adapter": None})  # the GRPO recipe's task and reward, on the bare base
    probe.run(run.resolve(base), prompts=PROBE_PROMPTS, k=PROBE_K_BASE, out_dir=out / "probe-base")
    timings["probe"] = time.time() - start

    print("\n== stage 2: SFT on worked solutions: the answer's form (LoRA)")
    start = time.time()
    sft_run = sft.train(recipes.load(recipes.builtin(SFT_RECIPE), {"output_dir": out / "sft", "overwrite": True},
                                     method="sft"))
    timings["sft"] = time.time() - start

    print("\n== stage 3: probe from the SFT adapter: is RL viable now?")
    start = time.time()
    settings = {"model.adapter": sft_run, "output_dir": out / "grpo", "overwrite": True}
    report = probe.run(run.resolve(recipes.load(grpo_recipe, settings)), prompts=PROBE_PROMPTS, k=PROBE_K_SFT,
                       out_dir=out / "probe-sft")
    timings["probe"] += time.time() - start
    if report["verdict"] == "no signal":
        raise UserError(f"probe after SFT: {report['reason']}; GRPO would learn nothing from here")

    print("\n== stage 4: GRPO with the answer-correctness reward")
    start = time.time()
    # probed just above, on a smaller sample than GRPO's own
    grpo_run = grpo.train(recipes.load(grpo_recipe, {**settings, "probe": False}, method="grpo"))
    timings["grpo"] = time.time() - start

    print(f"\n== stage 5: evaluate the base, the SFT adapter and every GRPO checkpoint on {args.eval_prompts} "
          "held-out problems")
    table = evaluate_run(grpo_run, k=PASS_K, prompts=args.eval_prompts, pass_k_prompts=PASS_K_PROMPTS)

    print("\n== stage 6: the doctor reads the GRPO run's logs")
    doctor.main([str(grpo_run)])

    print_table(table, timings, min(args.eval_prompts, word_problems.SIZES["test"]))
    print(f"probes and training {sum(timings.values()) / 60:.1f} min (probes {timings['probe']:.0f} s); "
          f"per checkpoint: {grpo_run / 'eval.md'}; runs in {out}/")


def print_table(table: list[dict], timings: dict, n: int) -> None:
    """The closing table, a row per stage (the evaluated run's rows), and each stage's gain over its start."""
    from tinyalign.evaluate import SAMPLES_RIGHT, paired_gain, trained_rows
    from tinyalign.measure.solve_rate import interval95

    rows = {row["model"]: row for row in table}
    trained = trained_rows(table)  # checkpoints by step, and the final adapter when it is not one of them
    print(f"\nheld-out accuracy on {n} word problems (greedy; 95 % interval); pass@{PASS_K} and the share of "
          f"right sampled answers on {PASS_K_PROMPTS} of them")
    print(f"{'stage':<15} {'accuracy':>9} {'95 % interval':>14} {f'pass@{PASS_K}':>7} {'sampled':>8} {'truncated':>10} "
          f"{'train time':>11}")
    stages = [("base", rows["base"], "-"), ("SFT", rows["start"], f"{timings['sft']:.0f} s")]
    stages += [(f"GRPO step {r['step']}", r, f"{timings['grpo']:.0f} s" if r is trained[-1] else "") for r in trained]
    for label, row, took in stages:
        low, high = interval95(row["accuracy"], n)
        print(f"{label:<15} {row['accuracy']:>9.1%} {f'{low:.1%}-{high:.1%}':>14} {row[f'pass@{PASS_K}']:>7.1%} "
              f"{row['sampled']:>8.1%} {row['truncated']:>10.1%} {took:>11}")
    # the same problems for every stage: each stage against the one before is a paired comparison
    print(f"\nbase -> final: {paired_gain(rows['base'], trained[-1])}")
    print(f"GRPO over its SFT start: {paired_gain(rows['start'], trained[-1])}")
    # what GRPO's reward trains is the sampled answer; greedy is the mode, and can stay put while it rises
    print(f"GRPO over its SFT start, right sampled answers: "
          f"{paired_gain(rows['start'], trained[-1], SAMPLES_RIGHT)}")


if __name__ == "__main__":
    main()
