"""The arena's Gradio page, one builder per tab: the Arena tab (arena_tab.py: side-by-side chat and
vote; queue_tab.py: a labeling session's prompt queue), the Leaderboard and Export tabs (admin.py) and
the Review tab (review.py).

Keyboard: Alt+1..4 vote (A, B, tie, both bad; plain 1..4 outside a text box), Enter sends, Alt+N is the
next prompt (or a new round), Alt+Z undoes the last vote. After every answer and vote the cursor is
back in the message box.
"""

from pathlib import Path

import gradio as gr

from tinyalign.app import admin, review
from tinyalign.app.arena_tab import ArenaTab
from tinyalign.app.ballots import Ballots
from tinyalign.app.engine import Engine
from tinyalign.app.prompts import Prompt
from tinyalign.app.queue_tab import QueueControls
from tinyalign.app.text import code

# Chatbot text keeps its line breaks and long tokens wrap, as in a plain-text viewer.
CSS = """#pane-left .message-content, #pane-right .message-content { white-space: pre-wrap; overflow-wrap: anywhere; }
#vote-row button { min-width: 0; }
#panes { flex-wrap: nowrap !important; }  /* on a phone too: the answers compared side by side, as labelled */
#panes > * { min-width: 0 !important; }"""
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


def build(engine: Engine, ballots: Ballots, export_path: Path, *, dimensions: dict[str, str] | None = None,
          prompt_queue: list[Prompt] | None = None, annotate_only: bool = False,
          completions=None) -> gr.Blocks:
    """dimensions: name -> description, judged A/B/tie beside the overall vote. prompt_queue: the
    prompts of a labeling session (prompts.load). annotate_only hides the Leaderboard, Export and
    Review tabs. completions: a GRPO run (or its completions.jsonl) for the Review tab."""
    dimensions = dict(dimensions or {})
    with gr.Blocks(title="tinyalign arena") as demo:
        listed = ", ".join(code(name) for name in engine.names)
        gr.Markdown(f"### tinyalign arena · base {code(engine.base_model)} · checkpoints: {listed} · "
                    f"votes go to {code(ballots.path)}")
        arena = ArenaTab(engine, ballots, dimensions, queued=bool(prompt_queue))
        if prompt_queue:
            QueueControls(arena, prompt_queue)
        admin.build_leaderboard_tab(ballots, list(dimensions), visible=not annotate_only)
        admin.build_export_tab(ballots, export_path, list(dimensions), visible=not annotate_only)
        if completions:
            review.build_tab(completions, ballots, visible=not annotate_only)
        arena.wire(demo)
    return demo


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           auth=None, block: bool = True):
    """Serve on host:port (127.0.0.1: this machine only). Off: Gradio's monitoring page, MCP server,
    browser-side run history and footer links, none of which an annotation tool needs to expose."""
    demo.queue()
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, css=CSS, head=KEYS,
                       footer_links=[], enable_monitoring=False, mcp_server=False, run_history=False,
                       ssr_mode=False, prevent_thread_lock=not block, quiet=not block)
