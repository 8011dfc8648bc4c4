"""The local judge model the judge rewards ask (rubric_judge, pairwise_judge): a model or a judge run
directory, loaded on first use, once, and the task as a judge reads it."""

from pathlib import Path

from tinyalign.core.errors import UserError


def judge_model(judge: str):
    """(Model spec, adapters) for a judge given as a model name/folder or as a run directory / checkpoint."""
    from tinyalign.config import recipe as recipes
    from tinyalign.config.recipe import Model

    folder = Path(judge).expanduser()
    if not (folder / "adapter_config.json").is_file():
        return Model(name=judge), {}
    recipe = next((p for p in (folder / "recipe.yaml", folder.parent / "recipe.yaml") if p.is_file()), None)
    if recipe is None:
        raise UserError(f"judge {judge} is an adapter without a recipe.yaml naming its base model; "
                        "pass the run directory it came from")
    return recipes.load(recipe).model, {"judge": str(folder)}


def judge_missing(judge: str) -> bool:
    """Whether a judge named as a folder is not there (hub ids and tiny: names are checked when they load)."""
    from tinyalign.models.loading import looks_like_path

    return looks_like_path(judge) and not Path(judge).expanduser().is_dir()


def check_judge(judge: str, flag: str = "--judge") -> None:
    """Name a missing judge folder now, not after minutes of other work."""
    if judge_missing(judge):
        raise UserError(f"{flag} {judge} not found; give a model (hub id, folder, tiny:qwen2-1m) or a judge run directory")


# judges loaded in this process, by name and the adapter's stamp: one copy however many rewards ask
_LOADED: dict = {}


def _stamp(judge: str):
    """A judge folder's adapter as saved now (so a judge trained again in place loads again), else None."""
    folder = Path(judge).expanduser()
    weights = next((folder / name for name in ("adapter_model.safetensors", "model.safetensors")
                    if (folder / name).is_file()), None)
    return (str(folder.resolve()), weights.stat().st_mtime_ns) if weights else None


class JudgeModel:
    """A judge given as a model or a run directory, loaded on first use, once; picklable like the
    other rewards (the model is not copied, but reloaded where it is used)."""

    def __init__(self, judge: str, max_new_tokens: int = 256, batch_size: int = 16, temperature: float = 0.0):
        self.judge, self.max_new_tokens, self.batch_size, self.temperature = judge, max_new_tokens, batch_size, temperature
        self._model = self._tokenizer = None

    def __getstate__(self):
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def load(self):
        if self._model is None:
            key = (self.judge, _stamp(self.judge))
            if key not in _LOADED:
                from tinyalign.models import loading as model
                from tinyalign.models.precision import answering_only

                spec, adapters = judge_model(self.judge)
                judge, tokenizer = model.load_with_adapters(spec, adapters)
                _LOADED[key] = answering_only(judge), tokenizer
            self._model, self._tokenizer = _LOADED[key]
        return self._model, self._tokenizer

    def ask(self, conversations: list[list[dict]], k: int = 1, max_new_tokens: int | None = None,
            desc: str | None = None) -> list[list[str]]:
        """k replies per conversation, as the judge writes them; the instructions its prompts open with are
        prefilled once a batch."""
        from tinyalign.models.generate import generate

        judge, tokenizer = self.load()
        return generate(judge, tokenizer, conversations, k=k, max_new_tokens=max_new_tokens or self.max_new_tokens,
                        temperature=self.temperature, batch_size=self.batch_size, desc=desc, share_prefix=True)

    def ask_after(self, texts: list[str], k: int = 1, desc: str | None = None) -> list[list[str]]:
        """k continuations of each text: a rendered conversation with the start of the judge's reply."""
        from tinyalign.models.generate import continue_texts

        judge, tokenizer = self.load()
        return continue_texts(judge, tokenizer, texts, k=k, max_new_tokens=self.max_new_tokens,
                              temperature=self.temperature, batch_size=self.batch_size, desc=desc, share_prefix=True)
