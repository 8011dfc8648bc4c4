"""`python app.py` — the command line of the arena: which checkpoints, which store, where to listen.

Everything a user can get wrong is checked before anything is loaded or written: the --adapter syntax
and names, each adapter folder, that all adapters share one base, --auth, and the vote store.
"""

import errno
import re
import socket
from pathlib import Path

from tinyalign.app.engine import BASE, PEFT_BASE
from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python app.py",
        description="Side-by-side chat with checkpoints of one base model; votes become DPO pairs.",
        epilog="example: python app.py --adapter sft=runs/tiny_sft --adapter dpo=runs/tiny_dpo --db prefs.sqlite")
    p.add_argument("--base", help="base model (hub id, folder or tiny:*); default: read from the runs' recipe.yaml")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=RUN_DIR",
                   help="a checkpoint to serve under NAME: a run directory or one of its checkpoint-* folders "
                        "(repeat for more); 'base' (adapters disabled) is always offered")
    p.add_argument("--db", default="prefs.sqlite",
                   help="the vote store (default: prefs.sqlite, created by the first vote)")
    p.add_argument("--export", help="where the Export tab writes DPO pairs (default: the store's name + .pairs.jsonl)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also publish a public gradio.live link (needs network)")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASS",
                   help="require a login (repeat for several annotators); the user name becomes the annotator")
    p.add_argument("--prompts", metavar="FILE_OR_RECIPE",
                   help="a labeling session: a JSONL of prompts ({\"prompt\", \"id\", \"reference\"} a line) "
                        "or a recipe (its held-out split, reference answers shown on request); "
                        "each annotator gets the next prompt they have not voted on")
    p.add_argument("--gold", metavar="FILE",
                   help="gold items mixed evenly into the --prompts queue: a JSONL of {\"prompt\", \"chosen\", "
                        "\"rejected\"} (the known better and worse answers); each annotator's agreement with them "
                        "is in prefs stats and the Leaderboard tab")
    p.add_argument("--dimensions", metavar="NAMES_OR_YAML",
                   help="preference dimensions judged A/B/tie beside the overall vote: a comma list "
                        "(correctness,helpfulness,style) or a YAML file of name: description")
    p.add_argument("--completions", metavar="RUN_DIR",
                   help="a Review tab over a GRPO run's completions.jsonl: filter by step, reward and "
                        "disagreement between rewards; a corrected bad case becomes a DPO pair")
    p.add_argument("--annotate-only", action="store_true",
                   help="hide the Leaderboard and Export tabs (blind collection: annotators see only the arena)")
    return p


def parse_adapters(items: list[str]) -> dict[str, str]:
    adapters: dict[str, str] = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq or not path:
            raise UserError(f"--adapter {item}: write NAME=RUN_DIR, e.g. --adapter sft={item or 'runs/sft'}")
        if not NAME.fullmatch(name) or name in (BASE, PEFT_BASE):
            raise UserError(f"--adapter {item}: the name {name!r} is "
                            f"{'reserved for the base model' if name in (BASE, PEFT_BASE) else 'not allowed'}; "
                            "use letters, digits, '_', '-' or '.', e.g. sft")
        if name in adapters:
            raise UserError(f"--adapter {name} is given twice; give each checkpoint its own name")
        adapters[name] = path
    return adapters


def parse_auth(items: list[str]) -> list[tuple[str, str]] | None:
    logins = []
    for item in items:
        user, colon, password = item.partition(":")
        if not colon or not user or not password:
            raise UserError(f"--auth expects USER:PASS, got {item.split(':')[0]!r}…")
        logins.append((user, password))
    return logins or None


def parse_dimensions(value: str | None) -> dict[str, str]:
    """--dimensions: "correctness,style" or a YAML file {name: description}; name -> description."""
    if not value:
        return {}
    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        import yaml

        if not path.is_file():
            raise UserError(f"--dimensions {value}: no such file; give a YAML file or a comma list, "
                            "e.g. --dimensions correctness,style")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise UserError(f"--dimensions {value}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(loaded, dict) or not loaded:
            raise UserError(f"--dimensions {value}: write one 'name: description' a line, e.g. "
                            "'correctness: is the answer right?'")
        dimensions = {str(k): "" if v is None else str(v) for k, v in loaded.items()}
    else:
        dimensions = {name.strip(): "" for name in value.split(",") if name.strip()}
    bad = [name for name in dimensions if not NAME.fullmatch(name)]
    if bad or not dimensions:
        raise UserError(f"--dimensions: {bad[0] if bad else value!r} is not a dimension name; use letters, "
                        "digits, '_', '-' or '.', e.g. --dimensions correctness,helpfulness,style")
    return dimensions


def check_listen(host: str, port: int) -> None:
    """Bind host:port once, as the server will: a busy port or an address that is not this machine's is
    refused now, in one line, not by a traceback after the model has loaded."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: a port is a number from 1 to 65535, e.g. --port 7860")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise UserError(f"--host {host}: not an address or a name of this machine; use 127.0.0.1 (this "
                        "machine only) or 0.0.0.0 (every network interface)") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"--port {port} is in use (another app is serving there?); stop it or pick "
                                f"another, e.g. --port {port + 1}") from None
            raise UserError(f"--host {host}: cannot listen there ({e.strerror}); use an address of this "
                            "machine, e.g. 127.0.0.1 or 0.0.0.0") from None


def run_recipe(folder: Path) -> dict:
    """The run's recipe.yaml (beside the adapter, or in the run directory above a checkpoint-*), or {}."""
    for candidate in (folder / "recipe.yaml", folder.parent / "recipe.yaml"):
        if candidate.is_file():
            return files.read_run_file(candidate)
    return {}


def base_spec(adapters: dict[str, str], base: str | None):
    """The Model spec to load: the runs' model section (quantisation, template...), named by --base or
    by the base the runs agree on; and the generation defaults of the first run's recipe."""
    from tinyalign.config.recipe import Model, build
    from tinyalign.models.loading import adapter_dir, check_adapter_base

    folders = {name: adapter_dir(path) for name, path in adapters.items()}
    recipes = {name: run_recipe(folder) for name, folder in folders.items()}
    bases = {name: (r.get("model") or {}).get("name") for name, r in recipes.items()}
    if base:
        for name, folder in folders.items():
            try:
                check_adapter_base(folder, base)
            except UserError:
                trained_on = bases[name] or files.read_run_file(folder / "adapter_config.json").get(
                    "base_model_name_or_path") or "another base"
                raise UserError(f"--adapter {name} was trained on {trained_on}, not --base {base}; "
                                f"drop --base to use the base its run names") from None
    else:
        unknown = [name for name, b in bases.items() if not b]
        if unknown:
            raise UserError(f"--adapter {unknown[0]}: no recipe.yaml says which base it was trained on; "
                            "pass --base MODEL")
        if len(set(bases.values())) > 1:
            listed = ", ".join(f"{name} on {b}" for name, b in bases.items())
            raise UserError(f"the adapters come from different bases ({listed}); an arena compares checkpoints "
                            "of one base: start one app per base")
        base = next(iter(bases.values()))
    section = next((r["model"] for r in recipes.values() if isinstance(r.get("model"), dict)), {})
    spec = build(Model, {k: v for k, v in section.items() if k not in ("name", "adapter")}, "model.")
    spec.name = base
    generation = next((r["generation"] for r in recipes.values() if r.get("generation")), {})
    defaults = {k: generation[k] for k in ("temperature", "max_new_tokens") if k in generation}
    return spec, defaults


@cli
def main(argv=None):
    args = parser().parse_args(argv)

    # ── checks: nothing is loaded or written until every argument is known to be usable
    adapters = parse_adapters(args.adapter)
    if not adapters:
        raise UserError("name at least one checkpoint: --adapter NAME=RUN_DIR (the base is always offered too)")
    auth = parse_auth(args.auth)
    dimensions = parse_dimensions(args.dimensions)
    from tinyalign.app import prompts

    prompt_queue = prompts.load(args.prompts) if args.prompts else None
    if args.gold:
        if not prompt_queue:
            raise UserError("--gold mixes gold items into a labeling session's queue: give --prompts too")
        prompt_queue = prompts.mix_gold(prompt_queue, prompts.load(args.gold), args.gold)
    if args.completions:
        from tinyalign.app import review

        review.load(args.completions)  # refused now if it is not there, not after the model loaded
    check_listen(args.host, args.port)
    spec, defaults = base_spec(adapters, args.base)

    from tinyalign.app.ballots import Ballots
    from tinyalign.app.engine import Engine
    from tinyalign.app.ui import build, launch

    ballots = Ballots(args.db)
    export_path = Path(args.export) if args.export else Path(args.db).with_suffix(".pairs.jsonl")

    # ── model: the base once, every adapter by name on top of it
    print(f"loading {spec.name} ({spec.quantization}) with adapters: {', '.join(adapters)}", flush=True)
    engine = Engine.load(spec, adapters, defaults)

    # ── serve
    if args.share and not auth:
        print("warning: --share without --auth: anyone with the link can chat and vote", flush=True)
    page = build(engine, ballots, export_path.resolve(), dimensions=dimensions, prompt_queue=prompt_queue,
                 annotate_only=args.annotate_only, completions=args.completions)
    launch(page, host=args.host, port=args.port, share=args.share, auth=auth)
