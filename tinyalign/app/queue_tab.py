"""A labeling session's controls on the Arena tab: Next and Skip over the prompt queue, the "mine / all"
counter, the reference answer, and the next prompt's answers generated while the current one is voted on.
A gold item in the queue is shown with its known answers, like any other pair (prompts.py).
"""

import gradio as gr

from tinyalign.app import prompts as queue
from tinyalign.app.arena import Match
from tinyalign.app.arena_tab import FOCUS_MESSAGE, READY_AHEAD, ArenaTab, who
from tinyalign.app.text import as_text
from tinyalign.core.errors import UserError


class QueueControls:
    def __init__(self, arena: ArenaTab, prompt_queue: list[queue.Prompt]):
        self.arena, self.prompts = arena, prompt_queue
        self.by_id = {p.id: p for p in prompt_queue}
        self.ahead = queue.Ahead()
        arena.queue = self

    def reference_text(self, match: Match | None) -> str:
        shown = self.by_id.get(match.prompt_id) if match else None
        return as_text(shown.reference) if shown and shown.reference else "(none)"

    def ahead_key(self, prompt, match: Match, temperature_value, max_tokens, system_text) -> tuple:
        """What answers made ahead must match: the prompt, the pair (or a blind draw), the settings."""
        pair = () if match.anonymous else (match.model_a, match.model_b)
        return prompt.id, match.anonymous, pair, float(temperature_value), int(max_tokens), system_text or ""

    def generate_ahead(self, match: Match, prompt, temperature_value, max_tokens, system_text):
        match.ask(prompt.text)
        texts = None
        for texts in self.arena.engine.stream(list(match.conversations(system_text or "")),
                                              [match.model_a, match.model_b],
                                              temperature=float(temperature_value), max_new_tokens=int(max_tokens)):
            pass
        return match.model_a, match.model_b, match.swapped, tuple(texts)

    def progress_text(self, match, annotator_name, request):
        name = who(annotator_name, request)
        store = self.arena.ballots.existing()
        votes = store.votes(current=True) if store else []
        if match is None or match.anonymous:
            pair = None
        else:  # a gold item counts in the pair of checkpoints it came between, and never names its own
            pair = match.stands_for if match.gold else queue.pair_key(match.model_a, match.model_b)
        return queue.progress(self.prompts, votes, name or "(no name yet)", pair)

    def on_next(self, match, skipped, annotator_name, mode_value, left, right, temperature_value, max_tokens,
                system_text, request: gr.Request, *, skip_current=False):
        arena = self.arena
        name = who(annotator_name, request)
        if not name:
            raise gr.Error("who is voting? type your name in the Annotator box first")
        skipped = list(skipped or [])
        if skip_current and match is not None and match.prompt_id and not match.voted:
            skipped.append(match.prompt_id)
        try:
            fresh = arena.new_match(mode_value, left, right)
        except UserError as e:
            raise gr.Error(str(e)) from None
        store = arena.ballots.existing()
        votes = store.votes(current=True) if store else []
        pair = None if fresh.anonymous else queue.pair_key(fresh.model_a, fresh.model_b)
        prompt = queue.next_prompt(self.prompts, queue.voted(votes, name, pair), set(skipped))
        if prompt is None:
            out = arena.view(None, status_text="Every prompt has your vote. Thank you!")
            out.update({arena.skipped_state: skipped,
                        arena.progress: self.progress_text(None, annotator_name, request)})
            yield out
            return
        if prompt.gold:
            fresh = Match.gold_item(prompt.id, prompt.text, *prompt.gold, stands_for=pair)
            out = arena.view(fresh, status_text=READY_AHEAD)
            out.update({arena.skipped_state: skipped,
                        arena.progress: self.progress_text(fresh, annotator_name, request)})
            yield out
            return
        system_used = prompt.system or system_text
        made = self.ahead.take(request.session_hash,
                               self.ahead_key(prompt, fresh, temperature_value, max_tokens, system_used))
        if made is not None:  # a blind match keeps the pair and sides drawn with its answers
            fresh.model_a, fresh.model_b, fresh.swapped, ready = made
        else:
            ready = None
        fresh.prompt_id = prompt.id
        fresh.ask(prompt.text)
        counter = self.progress_text(fresh, annotator_name, request)
        for out in arena.answer(fresh, temperature_value, max_tokens, system_used, ready=ready):
            out.update({arena.skipped_state: skipped, arena.progress: counter})
            yield out
        if not fresh.answered:
            return
        # While this pair is read and voted on, the one after it is generated in the background.
        following = queue.next_prompt(self.prompts, queue.voted(votes, name, pair) | {prompt.id}, set(skipped))
        if following is not None and not following.gold:
            try:
                guess = arena.new_match(mode_value, left, right)
            except UserError:
                return
            system_next = following.system or system_text
            self.ahead.start(request.session_hash,
                             self.ahead_key(following, guess, temperature_value, max_tokens, system_next),
                             lambda: self.generate_ahead(guess, following, temperature_value, max_tokens,
                                                         system_next))

    def on_skip(self, match, skipped, annotator_name, mode_value, left, right, temperature_value, max_tokens,
                system_text, request: gr.Request):
        yield from self.on_next(match, skipped, annotator_name, mode_value, left, right, temperature_value,
                                max_tokens, system_text, request, skip_current=True)

    def first_progress(self, annotator_name, request: gr.Request):
        return self.progress_text(None, annotator_name, request)

    def wire(self) -> None:
        arena = self.arena
        queue_inputs = [arena.match_state, arena.skipped_state, arena.annotator, arena.mode, arena.left_pick,
                        arena.right_pick, *arena.settings_inputs]
        queue_outputs = [*arena.screen, arena.skipped_state, arena.progress]
        arena.next_button.click(self.on_next, inputs=queue_inputs, outputs=queue_outputs).then(
            fn=None, js=FOCUS_MESSAGE)
        arena.skip.click(self.on_skip, inputs=queue_inputs, outputs=queue_outputs)
        arena.annotator.change(self.first_progress, inputs=arena.annotator, outputs=arena.progress)

