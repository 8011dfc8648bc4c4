"""Bad-case review: a GRPO run's completions.jsonl read beside each reward's score, filtered by step,
by reward, and by disagreement between rewards (format high, accuracy low: the classic hack).

A completion marked bad with a corrected answer goes into the vote store as a vote for the correction
over the completion (model_a "correction", model_b "<run>@<step>", settings.review = true), so the
same export turns it into a DPO pair. A completion marked good is stored as the completion with
settings.verdict "good" (model_b "good"): `prefs export --sft` (or the Export tab) writes it as an SFT
row. Review rows are left out of the checkpoint ratings.

    python app.py --adapter grpo=runs/tiny_grpo --completions runs/tiny_grpo
"""

from pathlib import Path

import gradio as gr

from tinyalign.app.ballots import Ballots
from tinyalign.app.text import as_text
from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.data.messages import message_text

DISAGREE = 0.5  # rewards this far apart on their own 0..1 range (min..max over the file) disagree


def load(path) -> tuple[str, list[dict]]:
    """(the run's name, its completions): a run directory or a completions.jsonl file."""
    path = Path(path)
    file = path / "completions.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"--completions {path}: no completions.jsonl there; give a GRPO run directory or the file")
    rows = [{**row, "line": number, "rewards": row.get("rewards") or {}}
            for number, row in files.read_jsonl(file)  # a line cut off by a killed run is skipped
            if isinstance(row, dict) and "completion" in row and "prompt" in row]
    if not rows:
        raise UserError(f"--completions {file}: no completions in it")
    return (file.parent.name or str(file)), rows


def text_of(value) -> str:
    """A prompt or completion as logged: plain text, or chat messages."""
    if isinstance(value, list):
        return "\n\n".join(f"[{m.get('role', '?')}] {message_text(m)}" for m in value if isinstance(m, dict))
    return message_text(value)


def disagreement(row: dict, ranges: dict[str, tuple[float, float]]) -> float:
    """How far apart the row's rewards are, each scaled to 0..1 by its range over the file."""
    scaled = [(score - ranges[name][0]) / (ranges[name][1] - ranges[name][0])
              for name, score in row["rewards"].items()
              if score is not None and name in ranges and ranges[name][1] > ranges[name][0]]
    return max(scaled) - min(scaled) if len(scaled) > 1 else 0.0


def reward_ranges(rows: list[dict]) -> dict[str, tuple[float, float]]:
    scores: dict[str, list[float]] = {}
    for row in rows:
        for name, score in row["rewards"].items():
            if score is not None:
                scores.setdefault(name, []).append(score)
    return {name: (min(values), max(values)) for name, values in scores.items()}


def select(rows: list[dict], *, steps=(None, None), reward=None, scores=(None, None), disagreeing=False):
    """The rows within the step range, with `reward` within the score range, and (if asked) whose
    rewards disagree by at least DISAGREE."""
    ranges = reward_ranges(rows)

    def within(value, low, high):
        return value is not None and (low is None or value >= low) and (high is None or value <= high)

    return [row for row in rows
            if within(row.get("step"), *steps)
            and (not reward or within(row["rewards"].get(reward), *scores))
            and (not disagreeing or disagreement(row, ranges) >= DISAGREE)]


def mark(store, run: str, row: dict, verdict: str, *, annotator: str, correction: str = "") -> int:
    """Store a verdict on one completion: "bad" with the answer it should have given (a DPO pair), or
    "good" (an SFT row). Returns the row id once committed."""
    if verdict == "bad" and not (correction or "").strip():
        raise UserError("write the corrected answer first: it becomes the chosen answer")
    prompt_messages = row["prompt"] if isinstance(row["prompt"], list) else [
        {"role": "user", "content": str(row["prompt"])}]
    prompt_messages = [m for m in prompt_messages if m.get("role") != "assistant"] or prompt_messages
    completion, checkpoint = text_of(row["completion"]), f"{run}@{row.get('step')}"
    settings = {"review": True, "verdict": verdict, "step": row.get("step"), "rewards": row["rewards"],
                "line": row["line"]}
    if verdict == "good":
        return store.record(conversation=prompt_messages, response_a=completion, response_b="",
                            model_a=checkpoint, model_b="good", vote="a", annotator=annotator, settings=settings)
    return store.record(conversation=prompt_messages, response_a=correction, response_b=completion,
                        model_a="correction", model_b=checkpoint, vote="a", annotator=annotator, tags=["wrong"],
                        settings=settings)


def build_tab(path, ballots: Ballots, *, visible: bool = True) -> None:
    run, rows = load(path)
    names = sorted(reward_ranges(rows))
    ranges = reward_ranges(rows)
    by_line = {row["line"]: row for row in rows}
    # A number box cannot be empty: its defaults span the whole file.
    steps = [row["step"] for row in rows if isinstance(row.get("step"), (int, float))] or [0]
    ranges = ranges or {"": (0.0, 0.0)}

    def listed(selected):
        """One choice per completion: its line, step, scores and the start of its text."""
        return gr.Radio(choices=[(f"line {row['line']} · step {row.get('step')} · "
                                  + ", ".join(f"{n} {row['rewards'].get(n)}" for n in names)
                                  + f" · disagreement {disagreement(row, ranges):.2f} · "
                                  + text_of(row["completion"])[:80], row["line"]) for row in selected], value=None)

    with gr.Tab("Review", visible=visible):
        gr.Markdown(f"Completions of **{as_text(run)}** ({len(rows)} logged). Pick a row, write the answer it "
                    "should have given, and mark it bad: the correction over the completion becomes a DPO pair "
                    "in the export. A completion that is right as it is: mark it good, it becomes an SFT row "
                    "(*Export SFT rows*).")
        with gr.Row():
            step_from = gr.Number(label="Step from", precision=0, value=min(steps))
            step_to = gr.Number(label="Step to", precision=0, value=max(steps))
            reward = gr.Dropdown(["", *names], value="", label="Reward")
            score_from = gr.Number(label="Score from", value=min(low for low, _ in ranges.values()))
            score_to = gr.Number(label="Score to", value=max(high for _, high in ranges.values()))
            disagreeing = gr.Checkbox(label="Rewards disagree", elem_id="review-disagree")
        apply = gr.Button("Filter", elem_id="review-filter")
        listing = gr.Radio(label="Completions", elem_id="review-list")
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", lines=4, interactive=False, elem_id="review-prompt")
            completion = gr.Textbox(label="Completion", lines=4, interactive=False, elem_id="review-completion")
        scores = gr.Markdown(elem_id="review-scores")
        picked = gr.State(None)
        correction = gr.Textbox(label="Corrected answer", lines=3, elem_id="review-correction")
        with gr.Row():
            mark_bad = gr.Button("Mark bad: the correction is chosen over it", elem_id="review-bad")
            mark_good = gr.Button("Mark good: an SFT row as it is", elem_id="review-good")
        status = gr.Markdown(elem_id="review-status")

    def on_filter(low, high, name, score_low, score_high, disagree):
        selected = select(rows, steps=(low, high), reward=name or None, scores=(score_low, score_high),
                          disagreeing=disagree)
        return listed(selected), f"{len(selected)} of {len(rows)} completions."

    apply.click(on_filter, inputs=[step_from, step_to, reward, score_from, score_to, disagreeing],
                outputs=[listing, status])

    def on_pick(line):
        if line is None:
            return None, "", "", "", ""
        row = by_line[line]
        rewards = ", ".join(f"{n} **{row['rewards'].get(n)}**" for n in names)
        return row, text_of(row["prompt"]), text_of(row["completion"]), f"Step {row.get('step')}: {rewards}", ""

    listing.change(on_pick, inputs=listing, outputs=[picked, prompt, completion, scores, correction])

    def on_mark(verdict):
        def handler(row, fixed, request: gr.Request):
            if row is None:
                raise gr.Error("pick a completion in the table first")
            try:
                review_id = mark(ballots.store(), run, row, verdict, correction=fixed,
                                 annotator=getattr(request, "username", None) or "reviewer")
            except UserError as e:
                raise gr.Error(str(e)) from None
            if verdict == "good":
                return f"Review #{review_id} recorded: line {row['line']} is good (an SFT row in the export)."
            return f"Review #{review_id} recorded: the correction over line {row['line']}."
        return handler

    mark_bad.click(on_mark("bad"), inputs=[picked, correction], outputs=status)
    mark_good.click(on_mark("good"), inputs=[picked, correction], outputs=status)
