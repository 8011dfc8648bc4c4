"""The arena's Gradio page: the Arena tab (side-by-side chat, vote, prompt queue), and the Leaderboard
and Export tabs (admin.py).

Model output is shown as text, never as markup: every message is HTML-escaped here and the chatbots
render no Markdown, so a model that emits <script> or <img onerror=...> shows those characters instead
of running them in the annotator's browser. The real texts live in the server-side match (gr.State);
the chatbots only ever receive the escaped copies and are never read back.

Keyboard: Alt+1..4 vote (A, B, tie, both bad; plain 1..4 outside a text box), Enter sends, Alt+N is the
next prompt (or a new round), Alt+Z undoes the last vote. After every answer and vote the cursor is
back in the message box.
"""

import traceback
from pathlib import Path

import gradio as gr

from . import admin, review
from . import prompts as queue
from ..errors import UserError
from .arena import TAGS, Match
from .ballots import Ballots
from .engine import Engine
from .text import as_text, code

PICK, ANONYMOUS = "pick two", "anonymous"
# Chatbot text keeps its line breaks and long tokens wrap, as in a plain-text viewer.
CSS = """#pane-left .message-content, #pane-right .message-content { white-space: pre-wrap; overflow-wrap: anywhere; }
#vote-row button { min-width: 0; }
#panes { flex-wrap: nowrap !important; }  /* on a phone too: the answers compared side by side, as labelled */
#panes > * { min-width: 0 !important; }"""
VOTE_BUTTONS = (("a", "A is better  [1]"), ("b", "B is better  [2]"), ("tie", "Tie  [3]"),
                ("both_bad", "Both bad  [4]"))
VERDICT_CHOICES = [("A", "a"), ("B", "b"), ("tie", "tie")]
FOCUS_MESSAGE = "() => { const box = document.querySelector('#message textarea'); if (box) box.focus(); }"
KEYS = """<script>
document.addEventListener('keydown', (event) => {
  const typing = ['TEXTAREA', 'INPUT'].includes(document.activeElement?.tagName);
  if (typing && !event.altKey) return;
  const target = {'1': '#vote-a', '2': '#vote-b', '3': '#vote-tie', '4': '#vote-both-bad',
                  'n': '#next, #clear', 'z': '#undo'}[event.key.toLowerCase()] ||
                 {'Digit1': '#vote-a', 'Digit2': '#vote-b', 'Digit3': '#vote-tie', 'Digit4': '#vote-both-bad',
                  'KeyN': '#next, #clear', 'KeyZ': '#undo'}[event.code];
  if (!target || (!event.altKey && !/^[1-4]$/.test(event.key))) return;
  const button = [...document.querySelectorAll(target)].find((b) => b.offsetParent && !b.disabled);
  if (button) { event.preventDefault(); button.click(); }
});
</script>"""


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


def build(engine: Engine, ballots: Ballots, export_path: Path, *, dimensions: dict[str, str] | None = None,
          prompt_queue: list[queue.Prompt] | None = None, annotate_only: bool = False,
          completions=None) -> gr.Blocks:
    """dimensions: name -> description, judged A/B/tie beside the overall vote. prompt_queue: the
    prompts of a labeling session (prompts.load). annotate_only hides the Leaderboard, Export and
    Review tabs. completions: a GRPO run (or its completions.jsonl) for the Review tab."""
    names = engine.names
    run_dirs = {name: path for name, path in engine.checkpoints.items() if path}
    default_right = names[1] if len(names) > 1 else names[0]
    dimensions = dict(dimensions or {})
    by_id = {p.id: p for p in prompt_queue or []}

    with gr.Blocks(title="tinyalign arena") as demo:
        listed = ", ".join(code(name) for name in names)
        gr.Markdown(f"### tinyalign arena · base {code(engine.base_model)} · checkpoints: {listed} · "
                    f"votes go to {code(ballots.path)}")
        match_state = gr.State(None)
        skipped_state = gr.State([])
        remembered_name = gr.BrowserState("", storage_key="tinyalign-annotator")
        with gr.Tab("Arena"):
            with gr.Row():
                mode = gr.Radio([PICK, ANONYMOUS], value=PICK, label="Mode", scale=2,
                                info="anonymous: a random pair, random sides, names shown after the vote")
                left_pick = gr.Dropdown(names, value=names[0], label="Checkpoint A (left)", scale=1)
                right_pick = gr.Dropdown(names, value=default_right, label="Checkpoint B (right)", scale=1)
                annotator = gr.Textbox(label="Annotator", placeholder="your name (asked once)", scale=1,
                                       elem_id="annotator")
            if prompt_queue:
                with gr.Row(equal_height=True):
                    progress = gr.Markdown(elem_id="progress")
                    next_button = gr.Button("Next prompt  [Alt+N]", variant="primary", elem_id="next", scale=0)
                    skip = gr.Button("Skip", elem_id="skip", scale=0)
                with gr.Accordion("Reference answer", open=False):
                    reference = gr.Markdown(elem_id="reference")
            with gr.Row(elem_id="panes"):
                chat_left = gr.Chatbot(label="A", elem_id="pane-left", render_markdown=False, buttons=[],
                                       feedback_options=None, height=260, min_width=0)
                chat_right = gr.Chatbot(label="B", elem_id="pane-right", render_markdown=False, buttons=[],
                                        feedback_options=None, height=260, min_width=0)
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row(elem_id="vote-row"):
                        vote_buttons = {kind: gr.Button(label, interactive=False, min_width=0,
                                                        elem_id=f"vote-{kind.replace('_', '-')}")
                                        for kind, label in VOTE_BUTTONS}
                        undo = gr.Button("Undo vote  [Alt+Z]", interactive=False, elem_id="undo", min_width=0)
                    with gr.Row():
                        message = gr.Textbox(placeholder="Ask both checkpoints… (Enter sends)", show_label=False,
                                             scale=5, elem_id="message", submit_btn=False, autofocus=True)
                        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    with gr.Row():
                        regenerate = gr.Button("Regenerate", interactive=False, elem_id="regenerate")
                        clear = gr.Button("New round (clear)", elem_id="clear")
                        keep_going = gr.Checkbox(False, label="Next message continues this conversation",
                                                 elem_id="continue")
                    status = gr.Markdown(elem_id="status")
                with gr.Column(scale=2):
                    edited = gr.Textbox(label="Better answer (optional): the 'chosen' answer in the DPO export",
                                        lines=2, elem_id="edited")
                    tags = gr.CheckboxGroup(list(TAGS), label="Tags on the vote (optional)", elem_id="tags")
                    with gr.Row():
                        tags_left = gr.CheckboxGroup(list(TAGS), label="Tags on A", elem_id="tags-left", min_width=0)
                        tags_right = gr.CheckboxGroup(list(TAGS), label="Tags on B", elem_id="tags-right",
                                                      min_width=0)
                    rationale = gr.Textbox(label="Why (optional)", lines=1, elem_id="rationale")
                    verdicts = {name: gr.Radio(VERDICT_CHOICES, label=f"{name}: which is better?", info=info or None,
                                               elem_id=f"dimension-{name}")
                                for name, info in dimensions.items()}
            with gr.Accordion("Generation settings", open=False):
                temperature = gr.Slider(0.0, 1.5, value=engine.defaults["temperature"], step=0.05,
                                        label="Temperature (0 = greedy)")
                max_new_tokens = gr.Slider(1, 2048, value=engine.defaults["max_new_tokens"], step=1,
                                           label="Max new tokens")
                system = gr.Textbox(label="System prompt", lines=2, value=engine.defaults.get("system", ""))

        admin.build_tabs(ballots, export_path, list(dimensions), visible=not annotate_only)
        if completions:
            review.build_tab(completions, ballots, visible=not annotate_only)

        # ------------------------------------------------------------ what the arena shows

        # What the annotator writes about one turn; view() clears it whenever the turn changes.
        turn_fields = {edited: "", tags: [], tags_left: [], tags_right: [], rationale: "",
                       **{radio: None for radio in verdicts.values()}}
        screen = [chat_left, chat_right, match_state, message, send, regenerate, *vote_buttons.values(), undo,
                  status, left_pick, right_pick, mode, keep_going, *turn_fields]
        if prompt_queue:
            screen += [reference]

        def view(match: Match | None, *, streaming: tuple[str, str] | None = None, status_text=None) -> dict:
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
                chat_left: gr.Chatbot(value=chat_messages(rows_left), label=label_left),
                chat_right: gr.Chatbot(value=chat_messages(rows_right), label=label_right),
                match_state: match,
                message: gr.Textbox(interactive=can_talk),
                send: gr.Button(interactive=can_talk),
                regenerate: gr.Button(interactive=bool(match and match.answered and match.can_continue) and not busy),
                undo: gr.Button(interactive=bool(match and match.voted and match.last_vote) and not busy),
                left_pick: gr.Dropdown(interactive=not locked),
                right_pick: gr.Dropdown(interactive=not locked),
                mode: gr.Radio(interactive=not locked),
                keep_going: gr.Checkbox(visible=bool(match and match.voted and match.can_continue)),
            }
            chosen = match.chosen if match and match.voted else ""
            out.update({button: gr.Button(interactive=can_vote, variant="primary" if kind == chosen else "secondary")
                        for kind, button in vote_buttons.items()})
            # The one place per-turn fields are reset: a new round, a new message, a regeneration, a vote
            # and its undo all move to another turn, so nothing written for one is stored with another.
            if match is None or match.fields_turn != match.turn:
                out.update(turn_fields)
                out[keep_going] = gr.Checkbox(value=False, visible=bool(match and match.voted and match.can_continue))
                if match is not None:
                    match.fields_turn = match.turn
            if prompt_queue:
                shown = by_id.get(match.prompt_id) if match else None
                out[reference] = as_text(shown.reference) if shown and shown.reference else "(none)"
            if status_text is not None:
                out[status] = status_text
            return out

        def answer(match: Match, temperature_value, max_tokens, system_text, *, sent: bool = False, ready=None):
            """Stream both answers of the open turn from one batched call, then enable the vote.
            ready: the (a, b) answers already generated ahead for this turn."""
            settings = {"temperature": float(temperature_value), "max_new_tokens": int(max_tokens),
                        "system": system_text or "", "base_model": engine.base_model}
            if ready is not None:
                match.answer(ready[0], ready[1], settings)
                yield view(match, status_text="Both answers are in (made while you voted): vote (keys 1-4).")
                return
            conversation_a, conversation_b = match.conversations(system_text or "")
            texts = ("", "")
            first = view(match, streaming=texts, status_text="generating…")
            if sent:
                first[message] = gr.Textbox(value="", interactive=False)  # the text is in both panes now
            yield first
            try:
                for texts in engine.stream([conversation_a, conversation_b], [match.model_a, match.model_b],
                                           temperature=settings["temperature"],
                                           max_new_tokens=settings["max_new_tokens"]):
                    yield view(match, streaming=tuple(texts))
            except GeneratorExit:  # the tab went away; the engine has stopped generating
                match.user_turns.pop()
                raise
            except Exception as e:
                # Drop the unanswered turn and say why, in a state the annotator can continue from.
                traceback.print_exc()
                match.user_turns.pop()
                yield view(match, status_text=f"Generation failed: {as_text(str(e))}")
                return
            match.answer(texts[0], texts[1], settings)
            yield view(match, status_text="Both answers are in: vote (keys 1-4), or keep chatting.")

        def new_match(mode_value, left, right) -> Match:
            match = Match.draw(names) if mode_value == ANONYMOUS else Match.pick(left, right)
            for name in (match.model_a, match.model_b):
                if name not in engine.checkpoints:  # the browser only offers these; refuse the rest
                    raise UserError(f"unknown checkpoint {name!r}")
            return match

        def on_send(text, match, mode_value, left, right, keep, temperature_value, max_tokens, system_text):
            if not text or not text.strip():
                yield view(match, status_text="Type a message first.")
                return
            try:
                # After a vote, a new message is a new round unless the annotator asked to continue:
                # accidental multi-turn votes are the common mistake.
                if match is None or (match.voted and not keep):
                    match = new_match(mode_value, left, right)
                match.ask(text)
            except UserError as e:
                raise gr.Error(str(e)) from None
            yield from answer(match, temperature_value, max_tokens, system_text, sent=True)

        def on_regenerate(match, temperature_value, max_tokens, system_text):
            if match is None:
                raise gr.Error("nothing to regenerate")
            try:
                match.retry()
            except UserError as e:
                raise gr.Error(str(e)) from None
            yield from answer(match, temperature_value, max_tokens, system_text)

        def who(typed: str, request: gr.Request | None) -> str:
            """The login name under --auth (it cannot be overridden), else the name typed once."""
            login = getattr(request, "username", None)
            return login or (typed or "").strip()

        def after_vote_text(match: Match, vote_id: int, kind: str) -> str:
            said = dict(VOTE_BUTTONS)[kind].split("  [")[0]
            reveal = (f" A was **{as_text(match.left)}**, B was **{as_text(match.right)}**."
                      if match.anonymous else "")
            if prompt_queue:
                more = " Next prompt: Alt+N."
            elif not match.can_continue:
                more = " Press *New round* for the next blind match."
            else:
                more = " Your next message starts a new round."
            return f"Vote #{vote_id} recorded: {said}.{reveal}{more}"

        def on_vote(kind):
            def record(request: gr.Request, match, annotator_name, edited_text, tag_values, left_tags, right_tags,
                       why, *verdict_values):
                if match is None:
                    raise gr.Error("nothing to vote on yet")
                try:
                    vote_id = match.vote(ballots.store(), kind, annotator=who(annotator_name, request),
                                         edited=edited_text or "", tags=tag_values or [], run_dirs=run_dirs,
                                         rationale=why or "", dimensions=dict(zip(verdicts, verdict_values)),
                                         side_tags={"a": left_tags or [], "b": right_tags or []})
                except UserError as e:
                    raise gr.Error(str(e)) from None
                # record() has committed: only now does the page say so.
                out = view(match, status_text=after_vote_text(match, vote_id, kind))
                if prompt_queue:
                    out[progress] = progress_text(match, annotator_name, request)
                return out
            return record

        def on_undo(match, annotator_name, request: gr.Request):
            if match is None:
                raise gr.Error("no vote to undo")
            try:
                undone = match.undo(ballots.store(), annotator=who(annotator_name, request))
            except UserError as e:
                raise gr.Error(str(e)) from None
            names_note = " The names stay visible; the new vote records that." if match.revealed else ""
            return view(match, status_text=f"Vote #{undone} undone (kept, marked superseded): vote again.{names_note}")

        settings_inputs = [temperature, max_new_tokens, system]
        send_event = dict(fn=on_send, inputs=[message, match_state, mode, left_pick, right_pick, keep_going,
                                              *settings_inputs], outputs=screen)
        send.click(**send_event).then(fn=None, js=FOCUS_MESSAGE)
        message.submit(**send_event).then(fn=None, js=FOCUS_MESSAGE)
        regenerate.click(on_regenerate, inputs=[match_state, *settings_inputs], outputs=screen)
        vote_outputs = screen + ([progress] if prompt_queue else [])
        for kind, button in vote_buttons.items():
            button.click(on_vote(kind), inputs=[match_state, annotator, edited, tags, tags_left, tags_right,
                                                rationale, *verdicts.values()],
                         outputs=vote_outputs).then(fn=None, js=FOCUS_MESSAGE)
        undo.click(on_undo, inputs=[match_state, annotator], outputs=screen)

        def new_round(mode_value):
            out = view(None, status_text="")
            out[left_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
            out[right_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
            return out

        # Changing the checkpoints or mode starts a new conversation: the old one belongs to other models.
        clear.click(new_round, inputs=mode, outputs=screen).then(fn=None, js=FOCUS_MESSAGE)
        chat_left.clear(new_round, inputs=mode, outputs=screen)  # a pane's own trash icon: the same
        chat_right.clear(new_round, inputs=mode, outputs=screen)
        mode.change(new_round, inputs=mode, outputs=screen)
        left_pick.change(lambda: view(None), outputs=screen)
        right_pick.change(lambda: view(None), outputs=screen)

        # ------------------------------------------------------------ identity

        def on_load(saved, typed, request: gr.Request):
            login = getattr(request, "username", None)
            if login:  # --auth: the login is the annotator, shown but not editable
                return gr.Textbox(value=login, interactive=False)
            if (typed or "").strip() or not saved:
                return gr.Textbox(interactive=True)  # nothing to restore; never clear what was typed
            return gr.Textbox(value=saved, interactive=True)

        demo.load(on_load, inputs=[remembered_name, annotator], outputs=annotator)
        annotator.change(lambda name: (name or "").strip(), inputs=annotator, outputs=remembered_name)

        # ------------------------------------------------------------ the prompt queue

        if prompt_queue:
            ahead = queue.Ahead()

            def ahead_key(prompt, match: Match, temperature_value, max_tokens, system_text) -> tuple:
                """What answers made ahead must match: the prompt, the pair (or a blind draw), the settings."""
                pair = () if match.anonymous else (match.model_a, match.model_b)
                return prompt.id, match.anonymous, pair, float(temperature_value), int(max_tokens), system_text or ""

            def generate_ahead(match: Match, prompt, temperature_value, max_tokens, system_text):
                match.ask(prompt.text)
                texts = None
                for texts in engine.stream(list(match.conversations(system_text or "")), [match.model_a, match.model_b],
                                           temperature=float(temperature_value), max_new_tokens=int(max_tokens)):
                    pass
                return match.model_a, match.model_b, match.swapped, tuple(texts)

            def progress_text(match, annotator_name, request):
                name = who(annotator_name, request)
                store = ballots.existing()
                votes = store.votes(current=True) if store else []
                pair = queue.pair_key(match.model_a, match.model_b) if match and not match.anonymous else None
                return queue.progress(prompt_queue, votes, name or "(no name yet)", pair)

            def on_next(match, skipped, annotator_name, mode_value, left, right, temperature_value, max_tokens,
                        system_text, request: gr.Request, *, skip_current=False):
                name = who(annotator_name, request)
                if not name:
                    raise gr.Error("who is voting? type your name in the Annotator box first")
                skipped = list(skipped or [])
                if skip_current and match is not None and match.prompt_id and not match.voted:
                    skipped.append(match.prompt_id)
                try:
                    fresh = new_match(mode_value, left, right)
                except UserError as e:
                    raise gr.Error(str(e)) from None
                store = ballots.existing()
                votes = store.votes(current=True) if store else []
                pair = None if fresh.anonymous else queue.pair_key(fresh.model_a, fresh.model_b)
                prompt = queue.next_prompt(prompt_queue, queue.voted(votes, name, pair), set(skipped))
                if prompt is None:
                    out = view(None, status_text="Every prompt has your vote. Thank you!")
                    out.update({skipped_state: skipped, progress: progress_text(None, annotator_name, request)})
                    yield out
                    return
                system_used = prompt.system or system_text
                made = ahead.take(request.session_hash,
                                  ahead_key(prompt, fresh, temperature_value, max_tokens, system_used))
                if made is not None:  # a blind match keeps the pair and sides drawn with its answers
                    fresh.model_a, fresh.model_b, fresh.swapped, ready = made
                else:
                    ready = None
                fresh.prompt_id = prompt.id
                fresh.ask(prompt.text)
                counter = progress_text(fresh, annotator_name, request)
                for out in answer(fresh, temperature_value, max_tokens, system_used, ready=ready):
                    out.update({skipped_state: skipped, progress: counter})
                    yield out
                if not fresh.answered:
                    return
                # While this pair is read and voted on, the one after it is generated in the background.
                following = queue.next_prompt(prompt_queue, queue.voted(votes, name, pair) | {prompt.id}, set(skipped))
                if following is not None:
                    try:
                        guess = new_match(mode_value, left, right)
                    except UserError:
                        return
                    system_next = following.system or system_text
                    ahead.start(request.session_hash,
                                ahead_key(following, guess, temperature_value, max_tokens, system_next),
                                lambda: generate_ahead(guess, following, temperature_value, max_tokens, system_next))

            def on_skip(match, skipped, annotator_name, mode_value, left, right, temperature_value, max_tokens,
                        system_text, request: gr.Request):
                yield from on_next(match, skipped, annotator_name, mode_value, left, right, temperature_value,
                                   max_tokens, system_text, request, skip_current=True)

            def first_progress(annotator_name, request: gr.Request):
                return progress_text(None, annotator_name, request)

            queue_inputs = [match_state, skipped_state, annotator, mode, left_pick, right_pick, *settings_inputs]
            queue_outputs = [*screen, skipped_state, progress]
            next_button.click(on_next, inputs=queue_inputs, outputs=queue_outputs).then(fn=None, js=FOCUS_MESSAGE)
            skip.click(on_skip, inputs=queue_inputs, outputs=queue_outputs)
            annotator.change(first_progress, inputs=annotator, outputs=progress)
    return demo


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           auth=None, block: bool = True):
    """Serve on host:port (127.0.0.1: this machine only). Off: Gradio's monitoring page, MCP server,
    browser-side run history and footer links, none of which an annotation tool needs to expose."""
    demo.queue()
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, css=CSS, head=KEYS,
                       footer_links=[], enable_monitoring=False, mcp_server=False, run_history=False,
                       ssr_mode=False, prevent_thread_lock=not block, quiet=not block)
