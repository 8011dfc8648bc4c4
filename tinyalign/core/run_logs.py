"""A run's logs as the doctor's checks read them: `Run` (history, resolved recipe, sampled completions)
and `Trend` (one logged metric, summarised robustly: quarter medians, least-squares slope, log-to-log noise).

Whether a metric rose or fell beyond noise, and whether the task metric is learning, is decided here
once, so every check in tinyalign.symptoms judges a course the same way.
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from statistics import linear_regression, median

# ---------------------------------------------------------------- thresholds (why each value)

MIN_POINTS = 8  # fewer logged values than this cannot show a trend; say nothing rather than guess
CHANGE_SIGNIFICANCE = 3.0  # a rise or fall counts only beyond 3 standard errors of the quarter medians
MIN_SPAN_STEPS = 40  # GRPO/DPO usually move within a few dozen steps; judge a reward/margin's course only after that ...
MIN_PROGRESS = 0.25  # ... and a quarter of the planned run (rewards often wait for the format to click)

MAD_TO_SIGMA = 1.4826  # MAD x this = standard deviation for Gaussian noise

RM_METRICS = "rm_metrics.json"  # a reward-model run's held-out figures, written when its training ends
DPO_METRICS = "dpo_metrics.json"  # a DPO run's held-out figures as a reward, written when its training ends

ACCURACY_NAMES = ("accuracy", "exact_match")  # reward names that measure correctness
LEARNING_RISE = 0.05  # the task metric (accuracy reward, else the total) rising 5 % of its scale ...
SLOPE_SIGNIFICANCE = 3.0  # ... beyond noise, or along a least-squares slope 3 standard errors above 0: it learns

# The settings the checks fall back on when a recipe leaves them out; their values are read from the
# installed TRL's own config classes (trl_defaults), so they follow the pin rather than a copy.
TRL_CONFIGS = {"grpo": "GRPOConfig", "dpo": "DPOConfig", "sft": "SFTConfig"}
TRL_DEFAULT_KEYS = {
    "grpo": ("learning_rate", "beta", "temperature", "max_completion_length", "num_generations", "epsilon",
             "loss_type", "max_grad_norm", "gradient_accumulation_steps", "num_iterations"),
    "dpo": ("learning_rate", "beta", "max_grad_norm"),
    "sft": ("learning_rate", "max_grad_norm"),
}


@cache
def trl_defaults(method: str) -> dict:
    """TRL's default for each of TRL_DEFAULT_KEYS[method], from the fields of its config class (trl is
    imported on first call, not with this module); {} for a method without one."""
    if method not in TRL_CONFIGS:
        return {}
    import trl

    fields = {f.name: f for f in dataclasses.fields(getattr(trl, TRL_CONFIGS[method]))}

    def default(field):
        return field.default_factory() if field.default is dataclasses.MISSING else field.default

    return {key: default(fields[key]) for key in TRL_DEFAULT_KEYS[method]}


# ---------------------------------------------------------------- what the checks see


@dataclass
class Trend:
    """One logged metric over the run (at least MIN_POINTS values), summarised robustly."""

    name: str
    steps: list[int]
    values: list[float]

    @property
    def first(self) -> float:
        return median(self.values[: self._quarter])

    @property
    def last(self) -> float:
        return median(self.values[-self._quarter :])

    @property
    def _quarter(self) -> int:
        return max(2, len(self.values) // 4)

    @property
    def span(self) -> int:
        return self.steps[-1] - self.steps[0]

    @property
    def slope(self) -> float:
        return linear_regression(self.steps, self.values).slope

    @property
    def start(self) -> float:
        """Where the run started: the median of the first two logs. Tiny and easy tasks can learn within the
        first quarter of the run, which a first-quarter median would count as the start."""
        return median(self.values[:2])

    @property
    def slope_t(self) -> float:
        """The least-squares slope over its standard error: uses every log, so it sees a steady rise through
        noise that quarter medians miss."""
        fit = linear_regression(self.steps, self.values)
        residuals = [v - (fit.intercept + fit.slope * s) for s, v in zip(self.steps, self.values)]
        mean_step = sum(self.steps) / len(self.steps)
        spread = math.sqrt(sum((s - mean_step) ** 2 for s in self.steps))
        sigma = math.sqrt(sum(r * r for r in residuals) / (len(residuals) - 2))
        return fit.slope * spread / sigma if sigma > 0 else math.copysign(math.inf, fit.slope)

    @property
    def noise(self) -> float:
        """The log-to-log noise (one standard deviation of a single logged value), robustly."""
        diffs = [b - a for a, b in zip(self.values, self.values[1:])]  # neighbours' differences cancel the trend
        return MAD_TO_SIGMA * median(abs(d - median(diffs)) for d in diffs) / math.sqrt(2)

    def beyond_noise(self, change: float, first: int = 0) -> bool:
        """Whether a change between the median of `first` (default: a quarter of the) values and the last
        quarter's median is more than the log-to-log noise could make by chance."""
        # A median of q values wanders ~1.25 sigma / sqrt(q); a difference of two such medians ~sqrt(1/q1 + 1/q2).
        spread = math.sqrt(1 / (first or self._quarter) + 1 / self._quarter)
        return abs(change) >= CHANGE_SIGNIFICANCE * 1.2533 * self.noise * spread

    def __str__(self) -> str:
        return (f"{self.name} {self.first:.3g} → {self.last:.3g} over steps {self.steps[0]}–{self.steps[-1]}"
                f" (slope {self.slope:.1e}/step)")


@dataclass
class Run:
    """The logs, the resolved recipe and the sampled completions of one run, as the checks read them."""

    history: list[dict]
    recipe: dict
    completions: list[dict]
    method: str
    accuracy_rewards: tuple = ()
    folder: "Path | None" = None  # the run directory, when the run is read from disk

    @cached_property
    def rm_metrics(self) -> "dict | None":
        """A reward-model run's held-out figures (rm_metrics.json), once its training has ended."""
        path = Path(self.folder) / RM_METRICS if self.folder else None
        return json.loads(path.read_text()) if path and path.is_file() else None

    def points(self, key: str) -> list[tuple[int, float]]:
        """(step, value) for every log entry holding a finite number under `key`, one per step."""
        by_step = {}
        for entry in self.history:
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                by_step[int(entry.get("step", len(by_step)))] = float(value)
        return sorted(by_step.items())

    def trend(self, key: str) -> "Trend | None":
        points = self.points(key)
        if len(points) < MIN_POINTS:
            return None
        return Trend(key, [s for s, _ in points], [v for _, v in points])

    @property
    def last_step(self) -> int:
        return max((int(e["step"]) for e in self.history if isinstance(e.get("step"), (int, float))), default=0)

    @property
    def total_steps(self) -> int:
        """The planned length when the recipe says it (so the callback judges "early" correctly), else the last step."""
        planned = number(self.train.get("max_steps"))
        return int(planned) if planned and planned > 0 else self.last_step

    def long_enough(self, trend: Trend) -> bool:
        """Whether the run went on long enough to say a reward is flat or falling."""
        return trend.span >= MIN_SPAN_STEPS and self.last_step >= MIN_PROGRESS * self.total_steps

    @property
    def train(self) -> dict:
        return self.recipe.get("train") or {}

    def setting(self, key: str):
        """A train setting: the recipe's value, else the logged peak LR, else TRL's default (only when a
        recipe exists: without one, a default would be a guess about what actually ran)."""
        if self.train.get(key) is not None:
            return self.train[key]
        if key == "learning_rate" and self.points("learning_rate"):
            return max(v for _, v in self.points("learning_rate"))
        return trl_defaults(self.method).get(key) if self.recipe else None

    @property
    def reward_scale(self) -> float:
        """The largest total reward a rollout can get, roughly: TRL's `reward` is the weighted sum."""
        weights = [abs(number(r.get("weight", 1.0)) or 0.0) for r in self.recipe.get("rewards") or [] if isinstance(r, dict)]
        if sum(weights) > 0:
            return sum(weights)
        return float(len(self.reward_names)) or 1.0

    @property
    def reward_names(self) -> list[str]:
        keys = {k for e in self.history for k in e}
        return sorted(k[len("rewards/") : -len("/mean")] for k in keys if k.startswith("rewards/") and k.endswith("/mean"))

    def is_accuracy(self, name: str) -> bool:
        """Whether a logged reward measures correctness: named so by the caller (who knows the reward
        registry's kinds), or called like one (math_accuracy, exact_match)."""
        return name in self.accuracy_rewards or looks_like_accuracy(name)

    def metric_trend(self) -> "Trend | None":
        """The task metric's course in the logs: the accuracy reward(s) when logged, else the total reward."""
        names = [n for n in self.reward_names if self.is_accuracy(n)]
        trends = [t for n in names if (t := self.trend(f"rewards/{n}/mean"))]
        if not trends:
            return self.trend("reward")
        if len(trends) == 1:
            return trends[0]
        steps = sorted(set(trends[0].steps).intersection(*(t.steps for t in trends[1:])))
        if len(steps) < MIN_POINTS:
            return trends[0]
        values = [sum(dict(zip(t.steps, t.values))[s] for t in trends) / len(trends) for s in steps]
        return Trend("accuracy rewards (mean)", steps, values)

    def learning(self) -> bool:
        """Whether the task metric rose from where the run started, beyond noise."""
        metric = self.metric_trend()
        if metric is None:
            return False
        enough = LEARNING_RISE * self.metric_scale(metric)
        rise = metric.last - metric.start
        if rise >= enough and metric.beyond_noise(rise, first=2):
            return True
        return metric.slope * metric.span >= enough and metric.slope_t >= SLOPE_SIGNIFICANCE

    def unlearning(self) -> bool:
        """Whether the task metric fell from where the run started, beyond noise."""
        metric = self.metric_trend()
        if metric is None:
            return False
        fall = metric.last - metric.start
        return fall <= -LEARNING_RISE * self.metric_scale(metric) and metric.beyond_noise(fall, first=2)

    def metric_scale(self, metric: Trend) -> float:
        return self.reward_scale if metric.name == "reward" else 1.0

    def reward_index(self, name: str) -> "int | None":
        for i, reward in enumerate(self.recipe.get("rewards") or []):
            if isinstance(reward, dict) and reward.get("name") == name:
                return i
        return None


def looks_like_accuracy(name: str) -> bool:
    """A reward called like one that measures correctness, for logs read without the reward registry."""
    return any(a in name for a in ACCURACY_NAMES)


def number(value) -> "float | None":
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
