"""GRPO rule rewards, and the registry that turns a recipe's `rewards:` entries into them.

A recipe lists rewards as mappings, e.g. `{name: overlong, weight: 0.5, max_len: 512, buffer: 128}`.
`resolve(entry)` returns the reward TRL will call: `f(completions, **kwargs) -> list[float | None]`,
named after the entry (TRL logs `rewards/<name>/mean`), with `kind` and `max_score` attributes,
and guarded (a failure names the reward and the completion it failed on). `weight` belongs to
TRL's `reward_weights` and is ignored here. Bad names and parameters raise `UserError` at resolve
time, i.e. when the recipe is validated, before any model is loaded.

A name of the form `package.module:function` imports your own reward; the other keys of the entry
are bound to it as keyword arguments, except `max_score` (default 1.0).
"""

import functools
import importlib
import inspect
import numbers
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from tinyalign.config.types import coerce, type_name
from tinyalign.core.errors import UserError
from tinyalign.core.names import did_you_mean
from tinyalign.rewards.accuracy import exact_match, math_accuracy
from tinyalign.rewards.format import answer_format, think_format
from tinyalign.rewards.implicit import implicit_reward
from tinyalign.rewards.length import length_penalty, overlong, repetition
from tinyalign.rewards.pairwise_reward import judge_verdict, pairwise_judge
from tinyalign.rewards.reward_model import reward_model
from tinyalign.rewards.rubric import rubric_judge
from tinyalign.rewards.structured import json_valid, regex_match
from tinyalign.rewards.text import completion_text

KINDS = ("accuracy", "format", "penalty", "custom")
_SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Builtin:
    """A built-in reward: its factory (parameters -> reward function), kind and best score."""

    factory: typing.Callable
    kind: str
    max_score: float

    @property
    def summary(self) -> str:
        return inspect.getdoc(self.factory).splitlines()[0]


REWARDS: dict[str, Builtin] = {
    "think_format": Builtin(think_format, "format", 1.0),
    "answer_format": Builtin(answer_format, "format", 1.0),
    "math_accuracy": Builtin(math_accuracy, "accuracy", 1.0),
    "exact_match": Builtin(exact_match, "accuracy", 1.0),
    "regex_match": Builtin(regex_match, "format", 1.0),
    "json_valid": Builtin(json_valid, "format", 1.0),
    "judge_verdict": Builtin(judge_verdict, "accuracy", 1.0),
    "overlong": Builtin(overlong, "penalty", 0.0),
    "length_penalty": Builtin(length_penalty, "penalty", 0.0),
    "repetition": Builtin(repetition, "penalty", 0.0),
}
# Rewards that run a model (loaded on first call), kept apart from the pure rule rewards above.
MODEL_REWARDS: dict[str, Builtin] = {
    "rubric_judge": Builtin(rubric_judge, "custom", 1.0),
    "pairwise_judge": Builtin(pairwise_judge, "custom", 1.0),
    "reward_model": Builtin(reward_model, "custom", 1.0),  # normalised: 1.0 = a standard deviation above its held-out mean
    "implicit_reward": Builtin(implicit_reward, "custom", 1.0),  # raw: beta * log-ratio, not normalised
}


def names() -> list[str]:
    """The built-in reward names, sorted (see `REWARDS[name].summary` for a one-line description)."""
    return sorted(REWARDS)


class RewardError(UserError):
    """A reward failed during training: raised, or returned the wrong number or type of scores."""


class Reward:
    """A resolved reward, as GRPO calls it: `reward(completions, **kwargs) -> list[float | None]`.

    Attributes: `__name__` (the recipe's name for it), `kind` ("accuracy", "format", "penalty" or
    "custom"), `max_score` (the score that means solved) and `params` (the bound parameters).
    Picklable whenever the wrapped function is (all built-ins are).
    """

    def __init__(
        self, name: str, fn: typing.Callable, kind: str, max_score: float, params: dict | None = None, doc: str | None = None
    ):
        if kind not in KINDS:
            raise ValueError(f"reward kind must be one of {KINDS}, got {kind!r}")
        self.__name__ = name
        self.fn, self.kind, self.max_score, self.params = fn, kind, float(max_score), dict(params or {})
        self.__doc__ = doc or inspect.getdoc(getattr(fn, "func", fn))

    def __repr__(self):
        return f"<reward {self.__name__} kind={self.kind} max_score={self.max_score} params={self.params}>"

    def _columns(self, kwargs: dict) -> dict:
        # A dataset column that happens to share a parameter's name must not override the parameter.
        return {key: value for key, value in kwargs.items() if key not in self.params}

    def __call__(self, completions, **kwargs):
        columns = self._columns(kwargs)
        try:
            scores = self.fn(completions=completions, **columns)
        except UserError:
            raise
        except Exception as error:
            row = next((i for i, one in _rows(completions, columns) if _fails(self.fn, one)), 0)
            raise self._failed(error, completions, row) from error
        return self._checked(scores, completions)

    def _failed(self, error: Exception, completions, row: int) -> RewardError:
        text = completion_text(completions[row]) if len(completions) > row else ""
        snippet = text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else "")
        message = " ".join(f"{type(error).__name__}: {error}".split())
        return RewardError(
            f"reward '{self.__name__}' failed on completion {row} ({message}); "
            f"completion: {snippet!r}; fix the reward or the data it reads"
        )

    def _checked(self, scores, completions) -> list:
        expected = len(completions)
        if isinstance(scores, (str, bytes, Mapping)) or not hasattr(scores, "__len__"):
            raise RewardError(
                f"reward '{self.__name__}' returned {type(scores).__name__}, expected a list of {expected} scores; "
                "return one score (or None) per completion"
            )
        if len(scores) != expected:
            raise RewardError(
                f"reward '{self.__name__}' returned {len(scores)} scores for {expected} completions; "
                "return one score (or None) per completion"
            )
        for row, score in enumerate(scores):
            if score is not None and not isinstance(score, numbers.Real):
                try:
                    float(score)
                except (TypeError, ValueError):
                    raise RewardError(
                        f"reward '{self.__name__}' returned {score!r} for completion {row}; "
                        "scores must be numbers or None"
                    ) from None
        return list(scores)


class AsyncReward(Reward):
    """A `Reward` around an `async def` function; GRPO awaits these concurrently."""

    async def __call__(self, completions, **kwargs):
        columns = self._columns(kwargs)
        try:
            scores = await self.fn(completions=completions, **columns)
        except UserError:
            raise
        except Exception as error:
            row = 0
            for i, one in _rows(completions, columns):
                try:
                    await self.fn(**one)
                except Exception:
                    row = i
                    break
            raise self._failed(error, completions, row) from error
        return self._checked(scores, completions)


def _rows(completions, columns: dict):
    """(index, kwargs for that completion alone) for each completion, to find the one that fails."""
    count = len(completions)
    columns = {key: value for key, value in columns.items() if key not in ("log_extra", "log_metric")}  # no re-logging
    for i in range(count):
        one = {
            key: [value[i]] if isinstance(value, list) and len(value) == count else value for key, value in columns.items()
        }
        yield i, {**one, "completions": [completions[i]]}


def _fails(fn, kwargs) -> bool:
    try:
        fn(**kwargs)
    except Exception:
        return True
    return False


def guard(
    fn: typing.Callable, name: str | None = None, kind: str = "custom", max_score: float = 1.0, params: dict | None = None
) -> Reward:
    """Wrap any reward function so that its failures name it and show the offending completion."""
    name = name or getattr(fn, "__name__", type(fn).__name__)
    wrapper = AsyncReward if inspect.iscoroutinefunction(getattr(fn, "func", fn)) else Reward
    return wrapper(name, fn, kind, max_score, params)


def _did_you_mean(word: str, choices) -> str:
    return did_you_mean(word, choices, form=" (did you mean '{}'?)")


def _builtin(name: str, params: dict) -> Reward:
    info = REWARDS.get(name) or MODEL_REWARDS[name]
    parameters = inspect.signature(info.factory).parameters
    accepted = f"accepted parameters: {', '.join(parameters) or 'none'}"
    for key, value in params.items():
        if key not in parameters:
            raise UserError(f"reward '{name}' has no parameter '{key}'{_did_you_mean(key, parameters)}; {accepted}")
        expected = parameters[key].annotation
        try:  # the recipe's own type check: ints taken as floats, YAML's `true` not a length
            params[key] = coerce(value, expected, key)
        except UserError:
            raise UserError(
                f"reward '{name}': parameter '{key}' must be {type_name(expected, null=True)}, "
                f"got {value!r}; {accepted}"
            ) from None
    missing = [key for key, p in parameters.items() if p.default is p.empty and key not in params]
    if missing:
        raise UserError(
            f"reward '{name}' needs parameter '{missing[0]}', "
            f"e.g. {{name: {name}, {missing[0]}: ...}}; {accepted}"
        )
    return Reward(name, info.factory(**params), info.kind, info.max_score, params, inspect.getdoc(info.factory))


def _import_custom(name: str):
    module_name, _, attribute = name.partition(":") if ":" in name else name.rpartition(".")
    if not module_name or not attribute:
        raise UserError(f"reward '{name}': write your own reward as 'package.module:function'")
    try:
        target = importlib.import_module(module_name)
    except Exception as e:  # ModuleNotFoundError, or the module itself failed while importing
        raise UserError(
            f"reward '{name}': cannot import module '{module_name}' ({type(e).__name__}: {e}); "
            "check the path and run from the folder that contains it, or install the package"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            public = [n for n in dir(target) if not n.startswith("_")]
            raise UserError(
                f"reward '{name}': '{module_name}' has no attribute '{part}'{_did_you_mean(part, public)}; "
                "check the name after the colon"
            )
        target = getattr(target, part)
    if not callable(target):
        raise UserError(
            f"reward '{name}': '{attribute}' is a {type(target).__name__}, not a function; "
            "point at a function f(completions, **kwargs)"
        )
    return target


def _custom(name: str, params: dict) -> Reward:
    fn = _import_custom(name)
    max_score = params.pop("max_score", 1.0)
    if not isinstance(max_score, numbers.Real) or isinstance(max_score, bool):
        raise UserError(f"reward '{name}': max_score must be a number, got {max_score!r}; fix it")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C functions have no signature to check
        signature = None
    if signature is not None:
        try:
            signature.bind_partial(**params)
        except TypeError:
            accepted = [p for p in signature.parameters if p != "completions"]
            bad = [key for key in params if key not in signature.parameters]
            raise UserError(
                f"reward '{name}' does not accept parameter '{(bad or list(params))[0]}'; "
                f"its parameters: {', '.join(accepted) or 'none'}"
            ) from None
    bound = functools.partial(fn, **params) if params else fn
    return guard(bound, name, "custom", max_score, params)


def accuracy_rewards(specs) -> list[Reward]:
    """The entries of a recipe's `rewards:` that say whether an answer is right (accuracy kind), resolved.

    An entry that no longer resolves (a custom module since removed) is left out: the callers read logs
    or print lines, and a recipe is checked whole before any training starts.
    """
    found = []
    for spec in specs or []:
        try:
            reward = resolve(spec)
        except Exception:
            continue
        if reward.kind == "accuracy":
            found.append(reward)
    return found


def resolve(spec: Mapping | str) -> Reward:
    """The reward for one recipe entry, e.g. `{name: overlong, weight: 1.0, max_len: 512, buffer: 128}`.

    A bare string is short for `{name: <string>}`. Raises `UserError` for a missing or unknown name,
    an unknown parameter, a parameter of the wrong type, or a custom reward that cannot be imported.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise UserError(f"each reward must be a mapping like {{name: math_accuracy, weight: 1.0}}, got {spec!r}")
    params = {key: value for key, value in spec.items() if key not in ("name", "weight")}
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UserError(
            f"a reward entry needs a name, e.g. {{name: math_accuracy}}; "
            f"got {dict(spec)!r}; known rewards: {', '.join(names())}"
        )
    if name in REWARDS or name in MODEL_REWARDS:
        return _builtin(name, params)
    if ":" in name or "." in name:
        return _custom(name, params)
    raise UserError(
        f"unknown reward '{name}'{_did_you_mean(name, [*REWARDS, *MODEL_REWARDS])}; "
        f"known rewards: {', '.join(names() + sorted(MODEL_REWARDS))}, or 'package.module:function' for your own"
    )
