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
the length of the call, so two calls must not overlap either: a lock runs them one after another
(they would queue on one GPU anyway).
"""

import queue
import threading

from ..errors import UserError
from ..generate import render

BASE = "base"  # the checkpoint name of the base model with every adapter disabled
PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch
_END = object()


def _streamer_class():
    from transformers.generation.streamers import BaseStreamer

    class BatchStreamer(BaseStreamer):
        """Collects the tokens `generate()` hands over, per row, and queues the decoded texts.

        transformers' own TextIteratorStreamer refuses batches; here every row keeps its tokens until
        its end-of-turn token, after which generate() only pads it.
        """

        def __init__(self, tokenizer, rows: int, stop_ids: set[int]):
            self.tokenizer = tokenizer
            self.tokens: list[list[int]] = [[] for _ in range(rows)]
            self.finished = [False] * rows
            self.stop_ids = stop_ids
            self.queue: queue.Queue = queue.Queue()
            self._prompt_seen = False

        def put(self, value):
            if not self._prompt_seen:  # generate() first hands over the prompt itself
                self._prompt_seen = True
                return
            for row, token in enumerate(value.reshape(len(self.tokens), -1)[:, -1].tolist()):
                if self.finished[row]:
                    continue
                if token in self.stop_ids:
                    self.finished[row] = True
                else:
                    self.tokens[row].append(token)
            self.queue.put(self.texts())

        def end(self):
            pass  # the worker thread queues _END once generate() has returned, or failed

        def texts(self) -> list[str]:
            # A byte-level token can end mid-character; hide the half character until it completes.
            return [self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd") for ids in self.tokens]

    return BatchStreamer


def _cancel_criteria(event: threading.Event):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        """Stop every row once nobody reads the stream any more (tab closed, Clear pressed)."""

        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Cancelled()])


class Engine:
    """Chat with named checkpoints of one base model. Thread-safe: generations run one at a time.

    checkpoints: name -> run directory (None for `base`), in the order the UI lists them.
    """

    def __init__(self, model, tokenizer, checkpoints: dict[str, str | None], base_model: str,
                 defaults: dict | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.checkpoints = dict(checkpoints)
        self.base_model = base_model
        self.defaults = {"temperature": 0.7, "max_new_tokens": 256, **(defaults or {})}
        self._lock = threading.Lock()
        tokenizer.padding_side = "left"  # decoder-only: every row continues from the right edge
        from ..model import stop_token_ids

        self._stop_ids = set(stop_token_ids(model, tokenizer))  # the template's end of turn, whatever eos says

    @classmethod
    def load(cls, spec, adapters: dict[str, str], defaults: dict | None = None) -> "Engine":
        """The base of `spec` loaded once (quantised as it says) with each adapter attached by name."""
        from ..model import adapter_dir, load_with_adapters

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
        streamer = _streamer_class()(self.tokenizer, len(conversations), self._stop_ids)
        cancel = threading.Event()
        outcome: dict = {}

        def work():
            try:
                with self._lock:
                    if not cancel.is_set():
                        outcome["texts"] = self._generate(conversations, checkpoints, streamer, cancel,
                                                          temperature, max_new_tokens, top_p)
            except BaseException as e:  # handed to the reader, which raises it in its own thread
                outcome["error"] = e
            finally:
                streamer.queue.put(_END)

        worker = threading.Thread(target=work, name="arena-generate", daemon=True)
        worker.start()
        try:
            while True:
                item = streamer.queue.get()
                while item is not _END and not streamer.queue.empty():
                    item = streamer.queue.get()  # a slow reader skips to the newest texts
                if item is _END:
                    break
                yield item
        finally:
            cancel.set()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        if "texts" in outcome:
            yield outcome["texts"]

    def generate(self, conversations: list[list[dict]], checkpoints: list[str], **settings) -> list[str]:
        """The final answers of stream(), without the intermediate texts."""
        texts = None
        for texts in self.stream(conversations, checkpoints, **settings):
            pass
        return texts

    def _generate(self, conversations, checkpoints, streamer, cancel, temperature, max_new_tokens, top_p):
        import torch
        from peft import PeftModel

        prompts = [render(self.tokenizer, messages) for messages in conversations]
        device = next(self.model.parameters()).device
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        routing = {}
        if isinstance(self.model, PeftModel):
            routing["adapter_names"] = [PEFT_BASE if name == BASE else name for name in checkpoints]
        sampling = temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                **batch, **routing, max_new_tokens=max_new_tokens, do_sample=sampling,
                temperature=temperature if sampling else None, top_p=top_p if sampling else None, top_k=None,
                pad_token_id=self.tokenizer.pad_token_id, eos_token_id=list(self._stop_ids), streamer=streamer,
                stopping_criteria=_cancel_criteria(cancel),
            )
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

