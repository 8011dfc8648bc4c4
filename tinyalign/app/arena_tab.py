"""The Arena tab: two checkpoints side by side, the vote and what the annotator writes beside it.

Model output is shown as text, never as markup: every message is HTML-escaped here and the chatbots
render no Markdown, so a model that emits <script> or <img onerror=...> shows those characters instead
of running them in the annotator's browser. The real texts live in the server-side match (gr.State);
the chatbots only ever receive the escaped copies and are never read back.

The tab is laid out when an ArenaTab is made, inside the page's Blocks; `wire()` attaches its events
once the other tabs are laid out. With a prompt queue, queue_tab.QueueControls adds Next and Skip.
"""

import traceback

import gradio as gr

from tinyalign.app.arena import TAGS, Match
from tinyalign.app.ballots import Ballots
from tinyalign.app.engine import Engine
from tinyalign.app.text import as_text
from tinyalign.core.errors import UserError

PICK, ANONYMOUS = "pick two", "anonymous"
VOTE_BUTTONS = (("a", "A is better  [1]"), ("b", "B is better  [2]"), ("tie", "Tie  [3]"),
                ("both_bad", "Both bad  [4]"))
VERDICT_CHOICES = [("A", "a"), ("B", "b"), ("tie", "tie")]
# What the page says when answers generated ahead are shown at once; a gold item says the same.
READY_AHEAD = "Both answers are in (made while you voted): vote (keys 1-4)."
FOCUS_MESSAGE = "() => { const box = document.querySelector('#message textarea'); if (box) box.focus(); }"


def chat_messages(rows: list[tuple[str, str]]) -> list[dict]:
    """Escaped chat messages; an empty answer keeps its (empty) bubble, so 'said nothing' shows."""
    messages = []
    for user, answer in rows:
        messages.append({"role": "user", "content": as_text(user)})
        messages.append({"role": "assistant", "content": as_text(answer)})
    return messages


def pane_labels(match: Match | None) -> tuple[str, str]:
    if match is None or not match.names_visible:
        return "A", "B"
    return f"A · {match.left}", f"B · {match.right}"


def who(typed: str, request: gr.Request | None) -> str:
    """The login name under --auth (it cannot be overridden), else the name typed once."""
    login = getattr(request, "username", None)
    return login or (typed or "").strip()


class ArenaTab:
    """The tab's components, and the handlers that redraw them from the match they show."""

    def __init__(self, engine: Engine, ballots: Ballots, dimensions: dict[str, str], queued: bool):
        self.engine, self.ballots, self.queued = engine, ballots, queued
        self.names = engine.names
        self.run_dirs = {name: path for name, path in engine.checkpoints.items() if path}
        self.queue = None  # the QueueControls of a labeling session, set by it
        self.match_state = gr.State(None)
        self.skipped_state = gr.State([])
        self.remembered_name = gr.BrowserState("", storage_key="tinyalign-annotator")
        with gr.Tab("Arena"):
            self._lay_out(dimensions)
        # What the annotator writes about one turn; view() clears it whenever the turn changes.
        self.turn_fields = {self.edited: "", self.tags: [], self.tags_left: [], self.tags_right: [],
                            self.rationale: "", **{radio: None for radio in self.verdicts.values()}}
        self.screen = [self.chat_left, self.chat_right, self.match_state, self.message, self.send,
                       self.regenerate, *self.vote_buttons.values(), self.undo, self.status, self.left_pick,
                       self.right_pick, self.mode, self.keep_going, *self.turn_fields]
        if queued:
            self.screen += [self.reference]
        self.settings_inputs = [self.temperature, self.max_new_tokens, self.system]

    def _lay_out(self, dimensions: dict[str, str]) -> None:
        names, engine = self.names, self.engine
        default_right = names[1] if len(names) > 1 else names[0]
        with gr.Row():
            self.mode = gr.Radio([PICK, ANONYMOUS], value=PICK, label="Mode", scale=2,
                                 info="anonymous: a random pair, random sides, names shown after the vote")
            self.left_pick = gr.Dropdown(names, value=names[0], label="Checkpoint A (left)", scale=1)
            self.right_pick = gr.Dropdown(names, value=default_right, label="Checkpoint B (right)", scale=1)
            self.annotator = gr.Textbox(label="Annotator", placeholder="your name (asked once)", scale=1,
                                        elem_id="annotator")
        if self.queued:
            with gr.Row(equal_height=True):
                self.progress = gr.Markdown(elem_id="progress")
                self.next_button = gr.Button("Next prompt  [Alt+N]", variant="primary", elem_id="next", scale=0)
                self.skip = gr.Button("Skip", elem_id="skip", scale=0)
            with gr.Accordion("Reference answer", open=False):
                self.reference = gr.Markdown(elem_id="reference")
        with gr.Row(elem_id="panes"):
            self.chat_left = gr.Chatbot(label="A", elem_id="pane-left", render_markdown=False, buttons=[],
                                        feedback_options=None, height=260, min_width=0)
            self.chat_right = gr.Chatbot(label="B", elem_id="pane-right", render_markdown=False, buttons=[],
                                         feedback_options=None, height=260, min_width=0)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row(elem_id="vote-row"):
                    self.vote_buttons = {kind: gr.Button(label, interactive=False, min_width=0,
                                                         elem_id=f"vote-{kind.replace('_', '-')}")
                                         for kind, label in VOTE_BUTTONS}
                    self.undo = gr.Button("Undo vote  [Alt+Z]", interactive=False, elem_id="undo", min_width=0)
                with gr.Row():
                    self.message = gr.Textbox(placeholder="Ask both checkpoints… (Enter sends)", show_label=False,
                                              scale=5, elem_id="message", submit_btn=False, autofocus=True)
                    self.send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                with gr.Row():
                    self.regenerate = gr.Button("Regenerate", interactive=False, elem_id="regenerate")
                    self.clear = gr.Button("New round (clear)", elem_id="clear")
                    self.keep_going = gr.Checkbox(False, label="Next message continues this conversation",
                                                  elem_id="continue")
                self.status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                self.edited = gr.Textbox(label="Better answer (optional): the 'chosen' answer in the DPO export",
                                         lines=2, elem_id="edited")
                self.tags = gr.CheckboxGroup(list(TAGS), label="Tags on the vote (optional)", elem_id="tags")
                with gr.Row():
                    self.tags_left = gr.CheckboxGroup(list(TAGS), label="Tags on A", elem_id="tags-left",
                                                      min_width=0)
                    self.tags_right = gr.CheckboxGroup(list(TAGS), label="Tags on B", elem_id="tags-right",
                                                       min_width=0)
                self.rationale = gr.Textbox(label="Why (optional)", lines=1, elem_id="rationale")
                self.verdicts = {name: gr.Radio(VERDICT_CHOICES, label=f"{name}: which is better?",
                                                info=info or None, elem_id=f"dimension-{name}")
                                 for name, info in dimensions.items()}
        with gr.Accordion("Generation settings", open=False):
            self.temperature = gr.Slider(0.0, 1.5, value=engine.defaults["temperature"], step=0.05,
                                         label="Temperature (0 = greedy)")
            self.max_new_tokens = gr.Slider(1, 2048, value=engine.defaults["max_new_tokens"], step=1,
                                            label="Max new tokens")
            self.system = gr.Textbox(label="System prompt", lines=2, value=engine.defaults.get("system", ""))

    # ------------------------------------------------------------ what the arena shows

    def view(self, match: Match | None, *, streaming: tuple[str, str] | None = None, status_text=None) -> dict:
        """Every arena component for this match; `streaming` = the (a, b) answers still growing."""
        rows_left, rows_right = match.displayed() if match else ([], [])
        if streaming is not None:
            grow_left, grow_right = (streaming[1], streaming[0]) if match.swapped else streaming
            rows_left[-1] = (rows_left[-1][0], grow_left)
            rows_right[-1] = (rows_right[-1][0], grow_right)
        label_left, label_right = pane_labels(match)
        busy = streaming is not None
        can_vote = bool(match and match.can_vote) and not busy
        can_talk = (match is None or match.can_continue) and not busy
        locked = match is not None and bool(match.user_turns)  # checkpoints are fixed mid-conversation
        out = {
            self.chat_left: gr.Chatbot(value=chat_messages(rows_left), label=label_left),
            self.chat_right: gr.Chatbot(value=chat_messages(rows_right), label=label_right),
            self.match_state: match,
            self.message: gr.Textbox(interactive=can_talk),
            self.send: gr.Button(interactive=can_talk),
            self.regenerate: gr.Button(interactive=bool(match and match.answered and match.can_continue)
                                       and not busy),
            self.undo: gr.Button(interactive=bool(match and match.voted and match.last_vote) and not busy),
            self.left_pick: gr.Dropdown(interactive=not locked),
            self.right_pick: gr.Dropdown(interactive=not locked),
            self.mode: gr.Radio(interactive=not locked),
            self.keep_going: gr.Checkbox(visible=bool(match and match.voted and match.can_continue)),
        }
        chosen = match.chosen if match and match.voted else ""
        out.update({button: gr.Button(interactive=can_vote, variant="primary" if kind == chosen else "secondary")
                    for kind, button in self.vote_buttons.items()})
        # The one place per-turn fields are reset: a new round, a new message, a regeneration, a vote
        # and its undo all move to another turn, so nothing written for one is stored with another.
        if match is None or match.fields_turn != match.turn:
            out.update(self.turn_fields)
            out[self.keep_going] = gr.Checkbox(value=False,
                                               visible=bool(match and match.voted and match.can_continue))
            if match is not None:
                match.fields_turn = match.turn
        if self.queued:
            out[self.reference] = self.queue.reference_text(match)
        if status_text is not None:
            out[self.status] = status_text
        return out

    def answer(self, match: Match, temperature_value, max_tokens, system_text, *, sent: bool = False, ready=None):
        """Stream both answers of the open turn from one batched call, then enable the vote.
        ready: the (a, b) answers already generated ahead for this turn."""
        settings = {"temperature": float(temperature_value), "max_new_tokens": int(max_tokens),
                    "system": system_text or "", "base_model": self.engine.base_model}
        if ready is not None:
            match.answer(ready[0], ready[1], settings)
            yield self.view(match, status_text=READY_AHEAD)
            return
        conversation_a, conversation_b = match.conversations(system_text or "")
        texts = ("", "")
        first = self.view(match, streaming=texts, status_text="generating…")
        if sent:
            first[self.message] = gr.Textbox(value="", interactive=False)  # the text is in both panes now
        yield first
        try:
            for texts in self.engine.stream([conversation_a, conversation_b], [match.model_a, match.model_b],
                                            temperature=settings["temperature"],
                                            max_new_tokens=settings["max_new_tokens"]):
                yield self.view(match, streaming=tuple(texts))
        except GeneratorExit:  # the tab went away; the engine has stopped generating
            match.user_turns.pop()
            raise
        except Exception as e:
            # Drop the unanswered turn and say why, in a state the annotator can continue from.
            traceback.print_exc()
            match.user_turns.pop()
            yield self.view(match, status_text=f"Generation failed: {as_text(str(e))}")
            return
        match.answer(texts[0], texts[1], settings)
        yield self.view(match, status_text="Both answers are in: vote (keys 1-4), or keep chatting.")

    def new_match(self, mode_value, left, right) -> Match:
        match = Match.draw(self.names) if mode_value == ANONYMOUS else Match.pick(left, right)
        for name in (match.model_a, match.model_b):
            if name not in self.engine.checkpoints:  # the browser only offers these; refuse the rest
                raise UserError(f"unknown checkpoint {name!r}")
        return match

    # ------------------------------------------------------------ chat

    def on_send(self, text, match, mode_value, left, right, keep, temperature_value, max_tokens, system_text):
        if not text or not text.strip():
            yield self.view(match, status_text="Type a message first.")
            return
        try:
            # After a vote, a new message is a new round unless the annotator asked to continue:
            # accidental multi-turn votes are the common mistake.
            if match is None or (match.voted and not keep):
                match = self.new_match(mode_value, left, right)
            match.ask(text)
        except UserError as e:
            raise gr.Error(str(e)) from None
        yield from self.answer(match, temperature_value, max_tokens, system_text, sent=True)

    def on_regenerate(self, match, temperature_value, max_tokens, system_text):
        if match is None:
            raise gr.Error("nothing to regenerate")
        try:
            match.retry()
        except UserError as e:
            raise gr.Error(str(e)) from None
        yield from self.answer(match, temperature_value, max_tokens, system_text)

    def new_round(self, mode_value):
        out = self.view(None, status_text="")
        out[self.left_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
        out[self.right_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
        return out

    # ------------------------------------------------------------ the vote

    def after_vote_text(self, match: Match, vote_id: int, kind: str) -> str:
        said = dict(VOTE_BUTTONS)[kind].split("  [")[0]
        reveal = (f" A was **{as_text(match.left)}**, B was **{as_text(match.right)}**."
                  if match.anonymous else "")
        if self.queued:
            more = " Next prompt: Alt+N."
        elif not match.can_continue:
            more = " Press *New round* for the next blind match."
        else:
            more = " Your next message starts a new round."
        return f"Vote #{vote_id} recorded: {said}.{reveal}{more}"

    def on_vote(self, kind):
        def record(request: gr.Request, match, annotator_name, edited_text, tag_values, left_tags, right_tags,
                   why, *verdict_values):
            if match is None:
                raise gr.Error("nothing to vote on yet")
            try:
                vote_id = match.vote(self.ballots.store(), kind, annotator=who(annotator_name, request),
                                     edited=edited_text or "", tags=tag_values or [], run_dirs=self.run_dirs,
                                     rationale=why or "", dimensions=dict(zip(self.verdicts, verdict_values)),
                                     side_tags={"a": left_tags or [], "b": right_tags or []})
            except UserError as e:
                raise gr.Error(str(e)) from None
            # record() has committed: only now does the page say so.
            out = self.view(match, status_text=self.after_vote_text(match, vote_id, kind))
            if self.queued:
                out[self.progress] = self.queue.progress_text(match, annotator_name, request)
            return out
        return record

    def on_undo(self, match, annotator_name, request: gr.Request):
        if match is None:
            raise gr.Error("no vote to undo")
        try:
            undone = match.undo(self.ballots.store(), annotator=who(annotator_name, request))
        except UserError as e:
            raise gr.Error(str(e)) from None
        names_note = " The names stay visible; the new vote records that." if match.revealed else ""
        return self.view(match, status_text=f"Vote #{undone} undone (kept, marked superseded): vote again.{names_note}")

    # ------------------------------------------------------------ identity

    def on_load(self, saved, typed, request: gr.Request):
        login = getattr(request, "username", None)
        if login:  # --auth: the login is the annotator, shown but not editable
            return gr.Textbox(value=login, interactive=False)
        if (typed or "").strip() or not saved:
            return gr.Textbox(interactive=True)  # nothing to restore; never clear what was typed
        return gr.Textbox(value=saved, interactive=True)

    # ------------------------------------------------------------ events

    def wire(self, demo: gr.Blocks) -> None:
        screen = self.screen
        send_event = dict(fn=self.on_send, inputs=[self.message, self.match_state, self.mode, self.left_pick,
                                                   self.right_pick, self.keep_going, *self.settings_inputs],
                          outputs=screen)
        self.send.click(**send_event).then(fn=None, js=FOCUS_MESSAGE)
        self.message.submit(**send_event).then(fn=None, js=FOCUS_MESSAGE)
        self.regenerate.click(self.on_regenerate, inputs=[self.match_state, *self.settings_inputs], outputs=screen)
        vote_outputs = screen + ([self.progress] if self.queued else [])
        for kind, button in self.vote_buttons.items():
            button.click(self.on_vote(kind),
                         inputs=[self.match_state, self.annotator, self.edited, self.tags, self.tags_left,
                                 self.tags_right, self.rationale, *self.verdicts.values()],
                         outputs=vote_outputs).then(fn=None, js=FOCUS_MESSAGE)
        self.undo.click(self.on_undo, inputs=[self.match_state, self.annotator], outputs=screen)

        # Changing the checkpoints or mode starts a new conversation: the old one belongs to other models.
        self.clear.click(self.new_round, inputs=self.mode, outputs=screen).then(fn=None, js=FOCUS_MESSAGE)
        self.chat_left.clear(self.new_round, inputs=self.mode, outputs=screen)  # a pane's own trash icon: the same
        self.chat_right.clear(self.new_round, inputs=self.mode, outputs=screen)
        self.mode.change(self.new_round, inputs=self.mode, outputs=screen)
        self.left_pick.change(lambda: self.view(None), outputs=screen)
        self.right_pick.change(lambda: self.view(None), outputs=screen)

        demo.load(self.on_load, inputs=[self.remembered_name, self.annotator], outputs=self.annotator)
        self.annotator.change(lambda name: (name or "").strip(), inputs=self.annotator, outputs=self.remembered_name)
        if self.queue is not None:
            self.queue.wire()
