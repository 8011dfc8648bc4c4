"""The arena's Gradio page: Arena (side-by-side chat and vote), Leaderboard and Export tabs.

Model output is shown as text, never as markup: every message is HTML-escaped here and the chatbots
render no Markdown, so a model that emits <script> or <img onerror=...> shows those characters instead
of running them in the annotator's browser. The real texts live in the server-side match (gr.State);
the chatbots only ever receive the escaped copies and are never read back.
"""

import html
import re
import traceback
from pathlib import Path

import gradio as gr

from .. import prefs
from ..errors import UserError
from .arena import TAGS, Match
from .ballots import Ballots
from .engine import Engine

PICK, ANONYMOUS = "pick two", "anonymous"
# Chatbot text keeps its line breaks and long tokens wrap, as in a plain-text viewer.
CSS = "#pane-left .message-content, #pane-right .message-content { white-space: pre-wrap; overflow-wrap: anywhere; }"
VOTE_BUTTONS = (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))


def as_text(text: str) -> str:
    """Text for Markdown prose or a chatbot: escaped once, so every character shows as written."""
    return html.escape(text, quote=False)


def code(text: str) -> str:
    """Text as a Markdown code span. Markdown escapes a code span's content itself, so it must not be
    escaped before (that showed `&lt;` for `<`); the fence is longer than any run of backticks inside."""
    text = str(text)
    fence = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


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


def build(engine: Engine, ballots: Ballots, export_path: Path) -> gr.Blocks:
    names = engine.names
    run_dirs = {name: path for name, path in engine.checkpoints.items() if path}
    default_right = names[1] if len(names) > 1 else names[0]

    with gr.Blocks(title="tinyalign arena") as demo:
        listed = ", ".join(code(name) for name in names)
        gr.Markdown(f"### tinyalign arena · base {code(engine.base_model)} · checkpoints: {listed} · "
                    f"votes go to {code(ballots.path)}")
        match_state = gr.State(None)
        with gr.Tab("Arena"):
            with gr.Row():
                mode = gr.Radio([PICK, ANONYMOUS], value=PICK, label="Mode", scale=1,
                                info="anonymous: a random pair, random sides, names shown after the vote")
                left_pick = gr.Dropdown(names, value=names[0], label="Checkpoint A (left)", scale=1)
                right_pick = gr.Dropdown(names, value=default_right, label="Checkpoint B (right)", scale=1)
            with gr.Row():
                chat_left = gr.Chatbot(label="A", elem_id="pane-left", render_markdown=False, buttons=[],
                                       feedback_options=None, height=360)
                chat_right = gr.Chatbot(label="B", elem_id="pane-right", render_markdown=False, buttons=[],
                                        feedback_options=None, height=360)
            with gr.Row():
                message = gr.Textbox(placeholder="Ask both checkpoints…", show_label=False, scale=5,
                                     elem_id="message", submit_btn=False)
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            with gr.Row():
                regenerate = gr.Button("Regenerate", interactive=False, elem_id="regenerate")
                clear = gr.Button("New round (clear)", elem_id="clear")
            with gr.Accordion("Generation settings", open=False):
                temperature = gr.Slider(0.0, 1.5, value=engine.defaults["temperature"], step=0.05,
                                        label="Temperature (0 = greedy)")
                max_new_tokens = gr.Slider(1, 2048, value=engine.defaults["max_new_tokens"], step=1,
                                           label="Max new tokens")
                system = gr.Textbox(label="System prompt", lines=2, value=engine.defaults.get("system", ""))
            gr.Markdown("**Vote** — enabled once both answers are complete; one vote per turn.")
            with gr.Row():
                vote_buttons = {kind: gr.Button(label, interactive=False, elem_id=f"vote-{kind.replace('_', '-')}")
                                for kind, label in VOTE_BUTTONS}
            with gr.Row():
                edited = gr.Textbox(label="Better answer (optional): becomes the 'chosen' answer in the DPO export",
                                    lines=3, scale=3, elem_id="edited")
                with gr.Column(scale=2):
                    tags = gr.CheckboxGroup(list(TAGS), label="Tags (optional)", elem_id="tags")
                    annotator = gr.Textbox(label="Annotator", placeholder="your name", elem_id="annotator")
            status = gr.Markdown(elem_id="status")

        with gr.Tab("Leaderboard") as leaderboard_tab:
            gr.Markdown("Bradley-Terry ratings (Elo scale) with a bootstrap 95 % range; a tie counts half a "
                        "win, *both bad* counts as a tie.")
            table = gr.Dataframe(headers=["rank", "checkpoint", "rating", "95% range", "votes", "wins", "losses",
                                          "ties", "win rate"], interactive=False, elem_id="leaderboard")
            refresh = gr.Button("Refresh")

        with gr.Tab("Export"):
            gr.Markdown(f"Writes the votes as DPO pairs (TRL's conversational preference format) to "
                        f"{code(export_path)}: A/B votes give a pair, a written better answer is chosen "
                        f"over the worse one, ties are dropped.")
            export = gr.Button("Export DPO pairs", elem_id="export")
            export_status = gr.Markdown(elem_id="export-status")
            export_file = gr.File(label="pairs.jsonl", interactive=False)

        # ------------------------------------------------------------ what the arena shows

        # What the annotator writes about one turn; view() clears it whenever the turn changes.
        turn_fields = {edited: "", tags: []}
        screen = [chat_left, chat_right, match_state, message, send, regenerate, *vote_buttons.values(),
                  status, left_pick, right_pick, mode, *turn_fields]

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
                left_pick: gr.Dropdown(interactive=not locked),
                right_pick: gr.Dropdown(interactive=not locked),
                mode: gr.Radio(interactive=not locked),
            }
            out.update({button: gr.Button(interactive=can_vote) for button in vote_buttons.values()})
            # The one place per-turn fields are reset: a new round, a new message, a regeneration and
            # a vote all move to another turn, so nothing written for one can be stored with another.
            if match is None or match.fields_turn != match.turn:
                out.update(turn_fields)
                if match is not None:
                    match.fields_turn = match.turn
            if status_text is not None:
                out[status] = status_text
            return out

        def answer(match: Match, temperature_value, max_tokens, system_text, *, sent: bool = False):
            """Stream both answers of the open turn from one batched call, then enable the vote."""
            settings = {"temperature": float(temperature_value), "max_new_tokens": int(max_tokens),
                        "system": system_text or "", "base_model": engine.base_model}
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
            yield view(match, status_text="Both answers are in: vote, or keep chatting.")

        def on_send(text, match, mode_value, left, right, temperature_value, max_tokens, system_text):
            if not text or not text.strip():
                yield view(match, status_text="Type a message first.")
                return
            try:
                if match is None:
                    match = Match.draw(names) if mode_value == ANONYMOUS else Match.pick(left, right)
                    for name in (match.model_a, match.model_b):
                        if name not in engine.checkpoints:  # the browser only offers these; refuse the rest
                            raise UserError(f"unknown checkpoint {name!r}")
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

        def on_vote(kind):
            def record(match, annotator_name, edited_text, tag_values, request: gr.Request):
                if match is None:
                    raise gr.Error("nothing to vote on yet")
                who = (annotator_name or "").strip() or getattr(request, "username", None) or "anonymous"
                try:
                    vote_id = match.vote(ballots.store(), kind, annotator=who, edited=edited_text or "",
                                         tags=tag_values or [], run_dirs=run_dirs)
                except UserError as e:
                    raise gr.Error(str(e)) from None
                # record() has committed: only now does the page say so.
                said = dict(VOTE_BUTTONS)[kind]
                reveal = (f" A was **{as_text(match.left)}**, B was **{as_text(match.right)}**."
                          if match.anonymous else "")
                more = " Press *New round* for the next blind match." if not match.can_continue else ""
                return view(match, status_text=f"Vote #{vote_id} recorded: {said}.{reveal}{more}")
            return record

        settings_inputs = [temperature, max_new_tokens, system]
        send_event = dict(fn=on_send, inputs=[message, match_state, mode, left_pick, right_pick, *settings_inputs],
                          outputs=screen)
        send.click(**send_event)
        message.submit(**send_event)
        regenerate.click(on_regenerate, inputs=[match_state, *settings_inputs], outputs=screen)
        for kind, button in vote_buttons.items():
            button.click(on_vote(kind), inputs=[match_state, annotator, edited, tags],
                         outputs=screen)

        def new_round(mode_value):
            out = view(None, status_text="")
            out[left_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
            out[right_pick] = gr.Dropdown(visible=mode_value == PICK, interactive=True)
            return out

        # Changing the checkpoints or mode starts a new conversation: the old one belongs to other models.
        clear.click(new_round, inputs=mode, outputs=screen)
        chat_left.clear(new_round, inputs=mode, outputs=screen)  # a pane's own trash icon: the same
        chat_right.clear(new_round, inputs=mode, outputs=screen)
        mode.change(new_round, inputs=mode, outputs=screen)
        left_pick.change(lambda: view(None), outputs=screen)
        right_pick.change(lambda: view(None), outputs=screen)

        # ------------------------------------------------------------ leaderboard and export

        def leaderboard_rows():
            store = ballots.existing()
            rows = prefs.leaderboard(store) if store else []
            return [[rank, row["model"], round(row["rating"]), f"{row['rating_low']:.0f}..{row['rating_high']:.0f}",
                     row["votes"], row["wins"], row["losses"], row["ties"], f"{row['win_rate']:.0%}"]
                    for rank, row in enumerate(rows, 1)]

        refresh.click(leaderboard_rows, outputs=table)
        leaderboard_tab.select(leaderboard_rows, outputs=table)

        def on_export():
            store = ballots.existing()
            if store is None:
                return "No votes yet.", None
            try:
                done = prefs.export(store, export_path)  # the same rules as `python -m tinyalign.prefs export`
            except UserError as e:
                return as_text(str(e)), None
            return (f"Wrote **{done['pairs']}** DPO pairs from **{done['votes']}** votes to "
                    f"{code(export_path)} (dropped: {done['dropped']}).", str(export_path))

        export.click(on_export, outputs=[export_status, export_file])
    return demo


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           auth=None, block: bool = True):
    """Serve on host:port (127.0.0.1: this machine only). Off: Gradio's monitoring page, MCP server,
    browser-side run history and footer links, none of which an annotation tool needs to expose."""
    demo.queue()
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, css=CSS, footer_links=[],
                       enable_monitoring=False, mcp_server=False, run_history=False, ssr_mode=False,
                       prevent_thread_lock=not block, quiet=not block)
