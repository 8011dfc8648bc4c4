"""What every check returns, and the recipe overrides several checks suggest."""

from dataclasses import dataclass, field

from tinyalign.core.run_logs import Run, number


@dataclass
class Finding:
    """One symptom: what the logs show, why it likely happens, and what to try."""

    symptom: str
    evidence: str
    cause: str
    remedy: str
    overrides: list[str] = field(default_factory=list)  # recipe overrides in CLI form: train.beta=0.01


# Overrides, computed from the recipe's current values; a value the doctor cannot know gives none.


def scale(run: Run, key: str, factor: float) -> list[str]:
    value = number(run.setting(key))
    return [f"train.{key}={yaml_number(value * factor)}"] if value else []


def clip_gradients(run: Run) -> list[str]:
    clip = number(run.setting("max_grad_norm"))
    return ["train.max_grad_norm=0.2"] if clip is None or clip > 0.2 else []  # ≈0.2 tames spikes (docs/practice.md)


def yaml_number(value) -> str:
    """A number as a recipe override reads it back: YAML needs the dot in 1.0e-06 to see a float."""
    text = f"{value:.3g}"
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + e + exponent
