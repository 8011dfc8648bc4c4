"""The one did-you-mean: the likeliest meant name for a mistyped one, as a hint to put in an error."""

import difflib
from collections.abc import Iterable, Mapping


def closest(name: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The choice `name` most likely meant: its alias when that is a choice, else the closest spelling
    (difflib's ratio at least 0.6), else None."""
    choices = [str(choice) for choice in choices]
    if aliases and aliases.get(name) in choices:
        return aliases[name]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str], form: str = "did you mean `{}`? ",
                 aliases: Mapping[str, str] | None = None) -> str:
    """`form` filled with the likeliest meant choice ("did you mean `learning_rate`? "), or "" when none is
    close. Each message keeps its own wording through `form`, e.g. " (did you mean '{}'?)"."""
    guess = closest(name, choices, aliases)
    return form.format(guess) if guess is not None else ""
