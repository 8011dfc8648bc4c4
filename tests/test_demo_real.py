"""make demo-real's closing table: a row per stage, and each stage's gain told apart from noise item by item.

The demo itself trains SmolLM2 for ~25 minutes (bench/RESULTS.md has its figures); here its table is
printed from an evaluated run's rows, as evaluate_run returns them."""

from tinyalign import demo_real
from tinyalign.evaluate import SOLVED


def row(model, step, right, n=300, **extra):
    flags = [i < right for i in range(n)]
    return {"model": model, "step": step, "accuracy": right / n, "pass@4": min(1.0, 1.3 * right / n),
            "sampled": 0.9 * right / n, "truncated": 0.01, SOLVED: flags, **extra}


def test_the_closing_table_has_a_row_per_stage_and_a_paired_verdict(capsys):
    table = [row("base", 0, 5), row("start", 0, 150), row("checkpoint-12", 12, 175), row("final", 12, 175)]
    demo_real.print_table(table, {"sft": 218.0, "grpo": 609.0, "probe": 124.0}, 300)
    out = capsys.readouterr().out
    stages = [line.split("%")[0].rsplit(maxsplit=1)[0] for line in out.splitlines() if line[15:].strip()[:1].isdigit()]
    assert stages == ["base", "SFT", "GRPO step 12"]
    assert "609 s" in out and "218 s" in out  # the final adapter is checkpoint-12: one row, not two
    # 25 problems fixed, none broken: +8.3 points, far outside the paired interval's noise
    assert "GRPO over its SFT start: +8.3 points" in out and "above it" in out
    assert "base -> final: +56.7 points" in out
