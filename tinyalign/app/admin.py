"""The Leaderboard and Export tabs: what the people running a labeling session look at. Hidden from
annotators with `--annotate-only`, so a blind collection stays blind."""

from pathlib import Path

import gradio as gr

from .. import prefs
from ..errors import UserError
from .ballots import Ballots
from .text import as_text, code

HEADERS = ["rank", "checkpoint", "rating", "95% range", "style-controlled", "votes", "wins", "losses", "ties",
           "win rate"]


def leaderboard_rows(store, dimension=None) -> list[list]:
    rows = prefs.leaderboard(store, dimension=dimension, resamples=100) if store else []
    return [[rank, row["model"], round(row["rating"]), f"{row['rating_low']:.0f}..{row['rating_high']:.0f}",
             round(row["style_rating"]), row["votes"], row["wins"], row["losses"], row["ties"],
             f"{row['win_rate']:.0%}"] for rank, row in enumerate(rows, 1)]


def dimension_rows(store, dimensions: list[str]) -> list[list]:
    """checkpoint x dimension ratings: where one checkpoint gains on one dimension and loses on another."""
    if not store or not dimensions:
        return []
    judged = {v for vote in store.votes(current=True) for v in vote["dimensions"]}
    tables = {d: {row["model"]: row for row in prefs.leaderboard(store, dimension=d, resamples=20)}
              for d in dimensions if d in judged}
    models = sorted({m for table in tables.values() for m in table})
    return [[m, *(f"{tables[d][m]['rating']:.0f} ({tables[d][m]['votes']})" if d in tables and m in tables[d]
                  else "-" for d in dimensions)] for m in models]


def summary(store) -> str:
    if not store:
        return "No votes yet."
    votes = store.votes(current=True)
    lines = [f"**{len(votes)}** votes."]
    bias = prefs.position_bias(votes)
    if bias:
        lines.append(f"Position bias: the left answer won {bias[0]} of {bias[1]} A/B votes "
                     f"(**{bias[0] / bias[1]:.0%}**; about 50% means none).")
    agreed = prefs.agreement(votes)
    if agreed["pairs"]:
        lines.append(f"Agreement: {agreed['agree']} of {agreed['pairs']} annotator pairs preferred the same "
                     f"answer (**{agreed['agree'] / agreed['pairs']:.0%}**) on {agreed['items']} prompts.")
    return " ".join(lines)


def sft_path(export_path: Path) -> Path:
    """Where the Export tab writes SFT rows: beside the pairs, prefs.pairs.jsonl -> prefs.sft.jsonl."""
    name = export_path.name
    stem = name[:-len(".pairs.jsonl")] if name.endswith(".pairs.jsonl") else export_path.stem
    return export_path.with_name(f"{stem}.sft.jsonl")


def build_tabs(ballots: Ballots, export_path: Path, dimensions: list[str], *, visible: bool = True) -> None:
    with gr.Tab("Leaderboard", visible=visible) as leaderboard_tab:
        gr.Markdown("Bradley-Terry ratings (Elo scale) with a bootstrap 95 % range; a tie counts half a win, "
                    "*both bad* counts as a tie. *Style-controlled*: the rating with answer length and markdown "
                    "as covariates, so a checkpoint does not climb by writing longer.")
        overview = gr.Markdown(elem_id="leaderboard-summary")
        table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="leaderboard")
        per_dimension = gr.Dataframe(headers=["checkpoint", *dimensions], interactive=False,
                                     label="Rating (votes) per dimension", elem_id="leaderboard-dimensions",
                                     visible=bool(dimensions))
        refresh = gr.Button("Refresh")

    def show():
        store = ballots.existing()
        return summary(store), leaderboard_rows(store), dimension_rows(store, dimensions)

    refresh.click(show, outputs=[overview, table, per_dimension])
    leaderboard_tab.select(show, outputs=[overview, table, per_dimension])

    with gr.Tab("Export", visible=visible):
        gr.Markdown(f"Writes the votes as DPO pairs (TRL's conversational preference format) to "
                    f"{code(export_path)}: A/B votes give a pair, a written better answer is chosen over the "
                    f"worse one, ties are dropped; undone votes are left out.")
        dimension = gr.Dropdown(["overall", *dimensions], value="overall", label="Pairs from",
                                visible=bool(dimensions), elem_id="export-dimension")
        with gr.Row():
            export = gr.Button("Export DPO pairs", elem_id="export")
            export_sft = gr.Button("Export SFT rows (completions marked good)", elem_id="export-sft")
        export_status = gr.Markdown(elem_id="export-status")
        export_file = gr.File(label="pairs.jsonl", interactive=False)

    def on_export(which):
        store = ballots.existing()
        if store is None:
            return "No votes yet.", None
        which = None if which in (None, "overall") else which
        try:  # the same rules as `python -m tinyalign.prefs export [--dimension D]`
            done = prefs.export(store, export_path, dimension=which)
        except UserError as e:
            return as_text(str(e)), None
        return (f"Wrote **{done['pairs']}** DPO pairs from **{done['votes']}** votes to {code(export_path)} "
                f"(dropped: {done['dropped']}).", str(export_path))

    export.click(on_export, inputs=dimension, outputs=[export_status, export_file])

    def on_export_sft():
        store, out = ballots.existing(), sft_path(export_path)
        if store is None:
            return "No votes yet.", None
        try:  # the same rules as `python -m tinyalign.prefs export --sft`
            done = prefs.export(store, out, sft=True)
        except UserError as e:
            return as_text(str(e)), None
        return f"Wrote **{done['rows']}** SFT rows (completions marked good) to {code(out)}.", str(out)

    export_sft.click(on_export_sft, outputs=[export_status, export_file])
