"""The vote store's command: export the votes as DPO pairs (or SFT rows), and print their statistics.

    python -m tinyalign.prefs export prefs.sqlite --out pairs.jsonl [--dimension correctness]
    python -m tinyalign.prefs export prefs.sqlite --out sft.jsonl --sft   # completions marked good
    python -m tinyalign.prefs stats prefs.sqlite

The store, the export rules, the ratings and the agreement figures live in tinyalign.votes; their
names are importable from here too, as scripts written against tinyalign.prefs expect.
"""

from collections import Counter

from tinyalign.core.errors import ArgumentParser, cli
from tinyalign.votes import (
    SCHEMA_VERSION,
    VERDICTS,
    VOTES,
    VoteStore,
    agreement,
    export,
    leaderboard,
    load_pairs,
    position_bias,
    sft_rows,
    trust,
    unswap_vote,
)
from tinyalign.votes.pairs import pairs

__all__ = ["SCHEMA_VERSION", "VERDICTS", "VOTES", "VoteStore", "agreement", "export", "leaderboard", "load_pairs",
           "main", "pairs", "position_bias", "sft_rows", "unswap_vote"]


def _export(args):
    if args.sft:
        done = export(args.db, args.out, args.dimension, sft=True)
        print(f"wrote {done['rows']} SFT rows (completions marked good) to {args.out}")
        return
    done = export(args.db, args.out, args.dimension, min_agreement=args.min_agreement)
    print(f"wrote {done['pairs']} DPO pairs from {done['votes']} votes to {args.out}")
    print(f"dropped: {done['dropped']}")


def _print_annotators(votes):
    """Per annotator: agreement with the gold items' known answers and with the other annotators."""
    table = trust.by_annotator(votes)
    if not any(row["gold"] or row["peers"] for row in table.values()):
        return
    width = max(9, *(len(name) for name in table))
    print(f"\n{'annotator':<{width}}  {'votes':>5}  {'gold agreement':>14}  {'with others':>14}")
    for name, row in table.items():
        print(f"{name:<{width}}  {row['votes']:>5}  {trust.share(row['gold_agree'], row['gold']):>14}  "
              f"{trust.share(row['peers_agree'], row['peers']):>14}")
    print("(gold: the known better answer chosen on gold items; with others: the same answer preferred as "
          "another annotator on the same prompt; export --min-agreement leaves out annotators below a share)")


def _stats(args):
    with VoteStore(args.db, create=False) as store:
        everything = store.votes()
        votes = [v for v in everything if v["superseded"] is None]
        table = leaderboard(store)
        dimensions = sorted({d for v in votes for d in v["dimensions"]})
        per_dimension = {d: leaderboard(store, dimension=d, resamples=50) for d in dimensions}
    undone = len(everything) - len(votes)
    print(f"{args.db}: {len(votes)} votes" + (f" ({undone} more undone, not counted)" if undone else ""))
    for title, counts in (("by vote", Counter(v["vote"] for v in votes)),
                          ("by annotator", Counter(v["annotator"] for v in votes)),
                          ("by tag", Counter(t for v in votes for t in v["tags"])),
                          ("by checkpoint and tag", Counter(
                              f"{v['model_' + side]} {t}" for v in votes
                              for side, tags in v["settings"].get("side_tags", {}).items() for t in tags))):
        print(f"{title}: " + (", ".join(f"{k} {n}" for k, n in counts.most_common()) or "none"))
    bias = position_bias(votes)
    if bias:
        print(f"position: the left answer won {bias[0]} of {bias[1]} a/b votes "
              f"({bias[0] / bias[1]:.0%}; about 50% means no position bias)")
    agreed = agreement(votes)
    if agreed["pairs"]:
        print(f"agreement: {agreed['agree']} of {agreed['pairs']} annotator pairs preferred the same answer "
              f"({agreed['agree'] / agreed['pairs']:.0%}) on {agreed['items']} prompts judged by 2+ annotators")
    _print_annotators(votes)
    same = sum(v["model_a"] == v["model_b"] for v in votes)
    if same:
        print(f"{same} votes compare a checkpoint with itself and are not rated")
    if not table:
        return
    width = max(10, *(len(row["model"]) for row in table))
    print(f"\n{'rank':>4}  {'checkpoint':<{width}}  {'rating':>6}  {'95% range':>11}  {'style-ctl':>9}  "
          f"{'votes':>5}  {'wins':>4}  {'losses':>6}  {'ties':>4}  {'win rate':>8}")
    for rank, row in enumerate(table, 1):
        span = f"{row['rating_low']:.0f}..{row['rating_high']:.0f}"
        print(f"{rank:>4}  {row['model']:<{width}}  {row['rating']:>6.0f}  {span:>11}  {row['style_rating']:>9.0f}  "
              f"{row['votes']:>5}  {row['wins']:>4}  {row['losses']:>6}  {row['ties']:>4}  {row['win_rate']:>8.0%}")
    print("(Bradley-Terry, Elo scale; both_bad counts as a tie, a tie as half a win; style-ctl: the rating "
          "with answer length and markdown as covariates)")
    if per_dimension:
        models = [row["model"] for row in table]
        print(f"\nper dimension (rating, votes):\n{'checkpoint':<{width}}  "
              + "  ".join(f"{d:>14}" for d in dimensions))
        for model in models:
            cells = []
            for d in dimensions:
                row = next((r for r in per_dimension[d] if r["model"] == model), None)
                cells.append(f"{row['rating']:.0f} ({row['votes']})".rjust(14) if row else f"{'-':>14}")
            print(f"{model:<{width}}  " + "  ".join(cells))


@cli
def main(argv=None):
    parser = ArgumentParser(prog="python -m tinyalign.prefs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export_command = commands.add_parser("export", help="write DPO pairs as JSONL (TRL conversational format)")
    export_command.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    export_command.add_argument("--out", required=True, help="the JSONL file to write")
    export_command.add_argument("--dimension", help="pairs from the verdicts on this preference dimension "
                                                    "(e.g. correctness) instead of the overall votes")
    export_command.add_argument("--sft", action="store_true", help="write the completions marked good in the "
                                                                   "Review tab as SFT rows (prompt/completion) "
                                                                   "instead of pairs")
    export_command.add_argument("--min-agreement", type=float, metavar="SHARE",
                                help="leave out the votes of annotators whose agreement is below SHARE (0..1): "
                                     "with the gold items when they voted on any, else with the other annotators "
                                     "(see stats); an annotator with neither is kept")
    export_command.set_defaults(run=_export)
    stats_command = commands.add_parser("stats", help="counts per checkpoint, vote, annotator, and the leaderboard")
    stats_command.add_argument("db", help="the vote store, e.g. prefs.sqlite")
    stats_command.set_defaults(run=_stats)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
