"""The arena's chat engine: one base model, every checkpoint an adapter on it, and the answers of
several checkpoints from ONE batched `generate()` call, streamed as they grow.

    engine = Engine.load(spec, {"sft": "runs/sft", "dpo": "runs/dpo"})   # base loaded once
    for texts in engine.stream([messages, messages], ["sft", "base"]):   # one row per pane
        ...                                                              # texts[i] grows token by token
    engine.generate([messages, messages], ["sft", "dpo"])                # -> the final two answers

Why one call: PEFT's `set_adapter()` switches the whole model, so two panes generating in two threads
would race and one pane could silently answer with the other's checkpoint. PEFT's mixed-adapter batch
(`generate(..., adapter_names=[...])`, `"__base__"` for the plain base) routes each row of the batch
through its own adapter instead. PEFT installs that routing as forward hooks on every LoRA layer for
the length of the call, so two calls must not overlap either: one scheduler thread runs them.

Several annotators: the requests waiting when a call starts (every tab's two panes, with the same
sampling settings) go into that ONE call, so three tabs wait about as long as one instead of three
times as long. A request that arrives mid-call joins the next one.
"""

import queue
import threading
import time
from dataclasses import dataclass, field

from tinyalign.core.errors import UserError
from tinyalign.models.chat_template import stop_token_ids
from tinyalign.models.generate import render
from tinyalign.models.precision import autocast

BASE = "base"  # the checkpoint name of the base model with every adapter disabled
PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch
_END = object()


class _Answers:
    """One request's rows of a batched call: their tokens until each row's end of turn (or the
    request's own max_new_tokens), and a queue of the decoded texts for the reader."""

    def __init__(self, tokenizer, rows: int, stop_ids: set[int], max_new_tokens: int):
        self.tokenizer = tokenizer
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.finished = [False] * rows
        self.stop_ids = stop_ids
        self.max_new_tokens = max_new_tokens
        self.queue: queue.Queue = queue.Queue()
        self.steps = 0

    def add(self, tokens: list[int]) -> None:
        self.steps += 1
        if self.steps > self.max_new_tokens:
            return
        for row, token in enumerate(tokens):
            if self.finished[row]:
                continue
            if token in self.stop_ids:
                self.finished[row] = True
            else:
                self.tokens[row].append(token)
        self.queue.put(self.texts())

    def done(self) -> bool:
        return all(self.finished) or self.steps >= self.max_new_tokens

    def texts(self) -> list[str]:
        # A byte-level token can end mid-character; hide the half character until it completes.
        return [self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd") for ids in self.tokens]


def _streamer_class():
    from transformers.generation.streamers import BaseStreamer

    class BatchStreamer(BaseStreamer):
        """Hands each request its rows of every new token. transformers' own TextIteratorStreamer
        refuses batches; `generate()` first hands over the prompt itself, which is skipped."""

        def __init__(self, requests: list["_Request"]):
            self.requests = requests
            self._prompt_seen = False

        def put(self, value):
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            tokens = value.reshape(-1).tolist()
            start = 0
            for request in self.requests:
                rows = len(request.conversations)
                request.answers.add(tokens[start:start + rows])
                start += rows

        def end(self):
            pass  # the scheduler ends each request once generate() has returned, or failed

    return BatchStreamer


@dataclass
class _Request:
    conversations: list
    checkpoints: list
    temperature: float
    max_new_tokens: int
    top_p: float
    answers: _Answers
    cancel: threading.Event = field(default_factory=threading.Event)
    outcome: dict = field(default_factory=dict)

    def batches_with(self, other: "_Request") -> bool:
        return (self.temperature, self.top_p) == (other.temperature, other.top_p)


def _cancel_criteria(requests: list[_Request]):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Finished(StoppingCriteria):
        """Stop once every request in the call is answered or has nobody reading it any more (tab
        closed, Clear pressed); a request's own max_new_tokens may be below the call's."""

        def __call__(self, input_ids, scores, **kwargs):
            over = all(r.cancel.is_set() or r.answers.done() for r in requests)
            return torch.full((input_ids.shape[0],), over, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Finished()])


class Engine:
    """Chat with named checkpoints of one base model. Thread-safe: one scheduler thread runs the
    generate calls, each serving every request that was waiting when it started.

    checkpoints: name -> run directory (None for `base`), in the order the UI lists them.
    gather_s: how long a call waits for requests sent at nearly the same moment (a few ms).
    """

    def __init__(self, model, tokenizer, checkpoints: dict[str, str | None], base_model: str,
                 defaults: dict | None = None, *, gather_s: float = 0.02):
        self.model = model
        self.tokenizer = tokenizer
        self.checkpoints = dict(checkpoints)
        self.base_model = base_model
        self.defaults = {"temperature": 0.7, "max_new_tokens": 256, **(defaults or {})}
        self.gather_s = gather_s
        self._waiting: queue.Queue = queue.Queue()
        self._scheduler: threading.Thread | None = None
        self._start_lock = threading.Lock()
        tokenizer.padding_side = "left"  # decoder-only: every row continues from the right edge
        self._stop_ids = set(stop_token_ids(model, tokenizer))  # the template's end of turn, whatever eos says

    @classmethod
    def load(cls, spec, adapters: dict[str, str], defaults: dict | None = None) -> "Engine":
        """The base of `spec` loaded once (quantised as it says) with each adapter attached by name."""
        from tinyalign.models.loading import adapter_dir, load_with_adapters

        model, tokenizer = load_with_adapters(spec, adapters)
        checkpoints = {BASE: None, **{name: str(adapter_dir(path).resolve()) for name, path in adapters.items()}}
        return cls(model, tokenizer, checkpoints, spec.name, defaults)

    @property
    def names(self) -> list[str]:
        return list(self.checkpoints)

    def stream(self, conversations: list[list[dict]], checkpoints: list[str], *, temperature: float = 0.0,
               max_new_tokens: int = 256, top_p: float = 1.0):
        """Yield the growing answers (one per row) as generation proceeds; the last yield is final.

        Row i answers conversations[i] (chat messages ending with the user turn) with checkpoints[i].
        Closing the generator early stops the generation at the next token.
        """
        if len(conversations) != len(checkpoints) or not conversations:
            raise ValueError("one checkpoint per conversation, at least one")
        unknown = [name for name in checkpoints if name not in self.checkpoints]
        if unknown:
            raise UserError(f"unknown checkpoint {unknown[0]!r}; this app serves: {', '.join(self.checkpoints)}")
        request = _Request(conversations, checkpoints, temperature, max_new_tokens, top_p,
                           _Answers(self.tokenizer, len(conversations), self._stop_ids, max_new_tokens))
        self._ensure_scheduler()
        self._waiting.put(request)
        try:
            while True:
                item = request.answers.queue.get()
                while item is not _END and not request.answers.queue.empty():
                    item = request.answers.queue.get()  # a slow reader skips to the newest texts
                if item is _END:
                    break
                yield item
        finally:
            request.cancel.set()
        if "error" in request.outcome:
            raise request.outcome["error"]
        if "texts" in request.outcome:
            yield request.outcome["texts"]

    def generate(self, conversations: list[list[dict]], checkpoints: list[str], **settings) -> list[str]:
        """The final answers of stream(), without the intermediate texts."""
        texts = None
        for texts in self.stream(conversations, checkpoints, **settings):
            pass
        return texts

    # ------------------------------------------------------------ the scheduler

    def _ensure_scheduler(self):
        with self._start_lock:
            if self._scheduler is None:
                self._scheduler = threading.Thread(target=self._schedule, name="arena-generate", daemon=True)
                self._scheduler.start()

    def _schedule(self):
        later: list[_Request] = []  # waiting, but with other sampling settings than the current call
        while True:
            first = later.pop(0) if later else self._waiting.get()
            time.sleep(self.gather_s)  # tabs that pressed Send at nearly the same moment share the call
            waiting = later + _drain(self._waiting)
            batch = [first] + [r for r in waiting if r.batches_with(first)]
            later = [r for r in waiting if not r.batches_with(first)]
            batch = [r for r in batch if not _closed(r)]
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Request]):
        try:
            texts = self._generate(batch)
            for request in batch:
                request.outcome["texts"] = texts[:len(request.conversations)]
                texts = texts[len(request.conversations):]
        except BaseException as e:  # handed to each reader, which raises it in its own thread
            for request in batch:
                request.outcome["error"] = e
        finally:
            for request in batch:
                request.answers.queue.put(_END)

    def _generate(self, batch: list[_Request]) -> list[str]:
        import torch
        from peft import PeftModel

        conversations = [c for r in batch for c in r.conversations]
        checkpoints = [c for r in batch for c in r.checkpoints]
        first = batch[0]
        prompts = [render(self.tokenizer, messages) for messages in conversations]
        device = next(self.model.parameters()).device
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        routing = {}
        if isinstance(self.model, PeftModel):
            routing["adapter_names"] = [PEFT_BASE if name == BASE else name for name in checkpoints]
        sampling = first.temperature > 0
        with torch.inference_mode(), autocast(self.model):  # autocast is per thread: entered in the generating one
            self.model.generate(
                **inputs, **routing, max_new_tokens=max(r.max_new_tokens for r in batch), do_sample=sampling,
                temperature=first.temperature if sampling else None, top_p=first.top_p if sampling else None,
                top_k=None, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=list(self._stop_ids),
                streamer=_streamer_class()(batch), stopping_criteria=_cancel_criteria(batch),
            )
        # Each request's rows, cut at its own max_new_tokens and end of turn (its streamer did the same).
        return [text for r in batch for text in r.answers.texts()]


def _drain(waiting: queue.Queue) -> list:
    items = []
    while True:
        try:
            items.append(waiting.get_nowait())
        except queue.Empty:
            return items


def _closed(request: _Request) -> bool:
    if request.cancel.is_set():
        request.answers.queue.put(_END)
        return True
    return False
