"""make demo-real's closing table: a row per stage, and each stage's gain told apart from noise item by item.

The demo itself trains SmolLM2 for ~25 minutes (bench/RESULTS.md has its figures); here its table is
printed from an evaluated run's rows, as evaluate_run returns them."""

from tinyalign import demo_real
from tinyalign.evaluate import SAMPLES_RIGHT, SOLVED


def row(model, step, right, n=300, sampled=None):
    flags = [i < right for i in range(n)]
    shares = sampled or [0.75 * f for f in flags[:64]]  # the share of 4 samples right, on the first 64
    return {"model": model, "step": step, "accuracy": right / n, "pass@4": min(1.0, 1.3 * right / n),
            "sampled": sum(shares) / len(shares), "truncated": 0.01, SOLVED: flags, SAMPLES_RIGHT: shares}


def test_the_closing_table_has_a_row_per_stage_and_a_paired_verdict(capsys):
    table = [row("base", 0, 5), row("start", 0, 150), row("checkpoint-12", 12, 175, sampled=[0.5] * 32 + [0.25] * 32),
             row("final", 12, 175)]
    demo_real.print_table(table, {"sft": 218.0, "grpo": 609.0, "probe": 124.0}, 300)
    out = capsys.readouterr().out
    stages = [line.split("%")[0].rsplit(maxsplit=1)[0] for line in out.splitlines() if line[15:].strip()[:1].isdigit()]
    assert stages == ["base", "SFT", "GRPO step 12"]
    assert "609 s" in out and "218 s" in out  # the final adapter is checkpoint-12: one row, not two
    # 25 problems fixed, none broken: +8.3 points, far outside the paired interval's noise
    assert "GRPO over its SFT start: +8.3 points" in out and "above it" in out
    assert "base -> final: +56.7 points" in out
    # sampled on the first 64: the start 3 of 4 right on each, the final 2 or 1 of 4
    assert "right sampled answers: -37.5 points" in out and "below it" in out
