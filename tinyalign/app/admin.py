"""The Leaderboard and Export tabs: what the people running a labeling session look at. Hidden from
annotators with `--annotate-only`, so a blind collection stays blind."""

from pathlib import Path

import gradio as gr

from tinyalign.app.ballots import Ballots
from tinyalign.app.text import as_text, code
from tinyalign.core.errors import UserError
from tinyalign.votes import pairs, ratings, trust

HEADERS = ["rank", "checkpoint", "rating", "95% range", "style-controlled", "votes", "wins", "losses", "ties",
           "win rate"]


def leaderboard_rows(store, dimension=None) -> list[list]:
    rows = ratings.leaderboard(store, dimension=dimension, resamples=100) if store else []
    return [[rank, row["model"], round(row["rating"]), f"{row['rating_low']:.0f}..{row['rating_high']:.0f}",
             round(row["style_rating"]), row["votes"], row["wins"], row["losses"], row["ties"],
             f"{row['win_rate']:.0%}"] for rank, row in enumerate(rows, 1)]


def dimension_ratings(store, dimensions: list[str]) -> dict[str, dict[str, dict]]:
    """{dimension: {checkpoint: its leaderboard row on that dimension}}, for the judged dimensions."""
    if not store or not dimensions:
        return {}
    judged = {v for vote in store.votes(current=True) for v in vote["dimensions"]}
    return {d: {row["model"]: row for row in ratings.leaderboard(store, dimension=d, resamples=20)}
            for d in dimensions if d in judged}


def tradeoff_frame(tables: dict[str, dict[str, dict]], dimensions: list[str]):
    """One row per (checkpoint, dimension) with its rating: what the trade-off chart draws."""
    import pandas as pd

    rows = [{"checkpoint": model, "dimension": d, "rating": round(tables[d][model]["rating"])}
            for d in dimensions if d in tables for model in sorted(tables[d])]
    return pd.DataFrame(rows, columns=["checkpoint", "dimension", "rating"])


def tradeoff_figure(frame):
    """Grouped bars: a group per dimension, a bar per checkpoint, drawn from the 1000 every rating
    starts at, so "better at correctness, worse at style" is a bar up in one group and down in the
    other. None without per-dimension verdicts."""
    if frame.empty:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state shared by the server's threads

    dimensions = list(dict.fromkeys(frame["dimension"]))
    models = sorted(set(frame["checkpoint"]))
    width = 0.8 / len(models)
    figure = Figure(figsize=(max(4.0, 1.6 * len(dimensions)) + 1.5, 3.0), layout="constrained")
    axes = figure.add_subplot()
    for i, model in enumerate(models):
        rated = frame[frame["checkpoint"] == model].set_index("dimension")["rating"]
        xs = [x + (i - (len(models) - 1) / 2) * width for x, d in enumerate(dimensions) if d in rated]
        axes.bar(xs, [rated[d] - 1000 for d in dimensions if d in rated], width, bottom=1000, label=model)
    axes.axhline(1000, color="grey", linewidth=0.8)
    axes.set_xticks(range(len(dimensions)), dimensions)
    axes.set_ylabel("rating")
    figure.legend(loc="outside right upper", fontsize="small", title="checkpoint")
    return figure


def dimension_rows(tables: dict[str, dict[str, dict]], dimensions: list[str]) -> list[list]:
    """checkpoint x dimension ratings: where one checkpoint gains on one dimension and loses on another."""
    models = sorted({m for table in tables.values() for m in table})
    return [[m, *(f"{tables[d][m]['rating']:.0f} ({tables[d][m]['votes']})" if d in tables and m in tables[d]
                  else "-" for d in dimensions)] for m in models]


def summary(store) -> str:
    if not store:
        return "No votes yet."
    votes = store.votes(current=True)
    lines = [f"**{len(votes)}** votes."]
    bias = trust.position_bias(votes)
    if bias:
        lines.append(f"Position bias: the left answer won {bias[0]} of {bias[1]} A/B votes "
                     f"(**{bias[0] / bias[1]:.0%}**; about 50% means none).")
    agreed = trust.agreement(votes)
    if agreed["pairs"]:
        lines.append(f"Agreement: {agreed['agree']} of {agreed['pairs']} annotator pairs preferred the same "
                     f"answer (**{agreed['agree'] / agreed['pairs']:.0%}**) on {agreed['items']} prompts.")
    return " ".join(lines)


ANNOTATOR_HEADERS = ["annotator", "votes", "gold agreement", "with others"]


def annotator_rows(store) -> list[list]:
    """Per annotator: votes, the known better answer chosen on gold items, and the same answer preferred
    as another annotator on the same prompt; what `prefs export --min-agreement` leaves out by."""
    if not store:
        return []
    return [[name, row["votes"], trust.share(row["gold_agree"], row["gold"]),
             trust.share(row["peers_agree"], row["peers"])]
            for name, row in trust.by_annotator(store.votes(current=True)).items()]


def sft_path(export_path: Path) -> Path:
    """Where the Export tab writes SFT rows: beside the pairs, prefs.pairs.jsonl -> prefs.sft.jsonl."""
    name = export_path.name
    stem = name[:-len(".pairs.jsonl")] if name.endswith(".pairs.jsonl") else export_path.stem
    return export_path.with_name(f"{stem}.sft.jsonl")


def build_leaderboard_tab(ballots: Ballots, dimensions: list[str], *, visible: bool = True) -> None:
    with gr.Tab("Leaderboard", visible=visible) as leaderboard_tab:
        gr.Markdown("Bradley-Terry ratings (Elo scale) with a bootstrap 95 % range; a tie counts half a win, "
                    "*both bad* counts as a tie. *Style-controlled*: the rating with answer length and markdown "
                    "as covariates, so a checkpoint does not climb by writing longer.")
        overview = gr.Markdown(elem_id="leaderboard-summary")
        table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="leaderboard")
        per_dimension = gr.Dataframe(headers=["checkpoint", *dimensions], interactive=False,
                                     label="Rating (votes) per dimension", elem_id="leaderboard-dimensions",
                                     visible=bool(dimensions))
        tradeoff = gr.Plot(label="Trade-offs: rating per checkpoint per dimension (a bar above 1000 in one group and "
                                 "below in another: better at one dimension, worse at the other)",
                           elem_id="leaderboard-tradeoff", visible=bool(dimensions), format="png")
        annotators = gr.Dataframe(headers=ANNOTATOR_HEADERS, interactive=False, elem_id="leaderboard-annotators",
                                  label="Annotators: agreement with gold items' known answers and with each other")
        refresh = gr.Button("Refresh")

    def show():
        store = ballots.existing()
        tables = dimension_ratings(store, dimensions)
        return (summary(store), leaderboard_rows(store), dimension_rows(tables, dimensions),
                tradeoff_figure(tradeoff_frame(tables, dimensions)), annotator_rows(store))

    shown = [overview, table, per_dimension, tradeoff, annotators]
    refresh.click(show, outputs=shown)
    leaderboard_tab.select(show, outputs=shown)


def build_export_tab(ballots: Ballots, export_path: Path, dimensions: list[str], *, visible: bool = True) -> None:
    with gr.Tab("Export", visible=visible):
        gr.Markdown(f"Writes the votes as DPO pairs (TRL's conversational preference format) to "
                    f"{code(export_path)}: A/B votes give a pair, a written better answer is chosen over the "
                    f"worse one (over both answers after a tie or *both bad*), ties without one are dropped; "
                    f"undone votes are left out.")
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
            done = pairs.export(store, export_path, dimension=which)
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
            done = pairs.export(store, out, sft=True)
        except UserError as e:
            return as_text(str(e)), None
        return f"Wrote **{done['rows']}** SFT rows (completions marked good) to {code(out)}.", str(out)

    export_sft.click(on_export_sft, outputs=[export_status, export_file])
