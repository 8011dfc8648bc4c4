"""python -m tinyalign.validate RECIPE [key=value ...] — check a recipe without downloading anything.

Checks keys and types, the method's TRL config fields, local model/adapter folders, local data
files and the columns the templates name, reward names, and output_dir; then prints the
resolved recipe — the method's defaults, GRPO's β and reward weights, the reward model's held-out
share, filled in by the same `resolve` the method script calls — so you see exactly what would run.
"""

from pathlib import Path

import yaml

from tinyalign.core.errors import ArgumentParser, cli


@cli
def main(argv=None):
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.training import run

    parser = ArgumentParser(prog="python -m tinyalign.validate", description=__doc__.splitlines()[0])
    recipes.add_arguments(parser)
    args = parser.parse_args(argv)
    import datasets

    datasets.disable_progress_bars()  # stderr is for the one-line error, if any

    # the method's own resolve: the settings printed below are the ones its trainer is built with
    recipe = run.resolve(recipes.load(args.recipe, args.overrides))
    notes = [f"method {recipe.method}: train keys are {recipes.trl_config_class(recipe.method).__name__} fields"]

    # model and adapter: local folders must exist (and fit each other); hub ids are not downloaded
    model.resolve_name(recipe.model.name)
    local = model.looks_like_path(recipe.model.name) or ":" in recipe.model.name
    notes.append(f"model {recipe.model.name}: " + ("local folder" if local else "hub id, not downloaded"))
    if recipe.model.adapter:
        if Path(recipe.model.adapter).expanduser().exists():
            model.check_adapter_base(model.adapter_dir(recipe.model.adapter), recipe.model.name)
            notes.append(f"adapter {recipe.model.adapter}: found, trained on this base")
        else:  # written by an earlier step of the pipeline (e.g. the SFT recipe)
            notes.append(f"adapter {recipe.model.adapter}: not there yet; run the recipe that writes it first")
    if recipe.model.policy:
        if Path(recipe.model.policy).expanduser().exists():
            model.policy_dir(recipe.model)
            notes.append(f"policy {recipe.model.policy}: found, trained on this base; the reward model starts from it")
        else:
            notes.append(f"policy {recipe.model.policy}: not there yet; run the recipe that writes it first")

    # data: local sources are read and mapped exactly as training will (columns, empty values, splits, mix)
    store = Path(recipe.data.source).expanduser()
    if store.suffix in data.VOTE_STORES and not store.exists():
        notes.append(f"data {store}: vote store not created yet; collect votes with python app.py --db {store}")
    elif data.is_local(recipe.data.source):
        train, test = data.load(recipe.data, recipe.method, recipe.seed)
        held_out = f", {len(test)} held out" if test is not None else ""
        notes.append(f"data {recipe.data.source}: {len(train)} rows for training{held_out}")
    else:
        data.template_columns(recipe.data.prompt)
        notes.append(f"data {recipe.data.source}: hub dataset, columns checked when it is loaded")

    # rewards resolve by name (custom ones are imported now, so typos surface before training)
    if recipe.rewards:
        from tinyalign import rewards

        for spec in recipe.rewards:
            rewards.resolve(spec)
        notes.append(f"rewards: {', '.join(str(s.get('name')) for s in recipe.rewards)}")

    if recipe.method == "grpo":  # resolved by grpo.resolve: drop unless the recipe says keep
        notes.append(f"flat_groups {recipe.flat_groups}: groups whose answers all score alike are " + (
            "dropped before the log-prob passes and the backward" if recipe.flat_groups == "drop" else "trained on"))

    # the TRL config accepts the train section; output_dir is free (or resumable)
    run.trl_config(recipe, recipes.trl_config_class(recipe.method))
    hardware = {k: v for k, v in model.hardware_args(recipe.model).items() if k not in recipe.train}
    if hardware:
        notes.append("this machine adds: " + ", ".join(f"{k}={v}" for k, v in hardware.items()))
    notes.append(f"computes in {model.precision(recipe.model).describe()}")
    run.check_output_dir(recipe)
    notes.append(f"output_dir {recipe.output_dir}: ok")

    print(yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True), end="")
    print("\n".join(f"ok: {n}" for n in notes))


if __name__ == "__main__":
    main()
