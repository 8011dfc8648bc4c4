"""python -m tinyalign.export RUN_DIR --merge --out DIR [--push-to-hub REPO] — a run as a standalone model.

    --merge      the adapter folded into the base: a plain transformers model (16-bit on a GPU machine,
                 fp32 on CPU), loadable and servable (vLLM, TGI, llama.cpp conversion) without peft
    (default)    the adapter alone (a few MB), with its tokenizer and recipe

The merge never touches 4-bit weights: adding a LoRA delta to NF4 weights re-quantises it and loses
most of it. The base is loaded unquantised in the target dtype and merged there; a base that is only
published pre-quantised (e.g. `*-bnb-4bit`) is dequantised first. Either way the tokenizer and chat
template are saved beside the weights, so the model chats the way it was trained to.
"""

import shutil
import tempfile
from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli

DTYPES = ("auto", "float16", "bfloat16", "float32")
# What an adapter-only export carries: the adapter, the tokenizer it was trained with, the recipe.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "chat_template.jinja", "recipe.yaml")


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m tinyalign.export", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a finished run directory, or one of its checkpoint-* folders")
    p.add_argument("--out", required=True, help="folder to create (must not exist yet)")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base weights")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="merged weights' dtype; auto: the run's model.dtype, else bf16/fp16 by GPU, fp32 on CPU")
    p.add_argument("--dequantize", action="store_true",
                   help="merge into the run's 4-bit base weights, dequantised, instead of the original ones: "
                        "answers match the 4-bit adapter's, the base keeps its 4-bit rounding")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload --out to this hub repo (needs `hf auth login`)")
    p.add_argument("--private", action="store_true", help="create the hub repo private")
    return p.parse_args(argv)


def run_model_spec(folder: Path):
    """The run's `model:` section (a checkpoint's recipe.yaml is in the run directory above it);
    for an adapter trained elsewhere, the base named in its adapter_config.json."""
    from tinyalign.config.recipe import Model
    from tinyalign.config.types import build

    for recipe in (folder / "recipe.yaml", folder.parent / "recipe.yaml"):
        if recipe.is_file():
            return build(Model, files.read_run_file(recipe).get("model") or {}, "model.")
    base = files.read_run_file(folder / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise UserError(f"{folder} has no recipe.yaml and its adapter_config.json names no base model")
    return Model(name=base)


def check_paths(run_dir: str, out: str) -> tuple[Path, Path]:
    folder, target = files.run_folder(run_dir), Path(out).expanduser()
    if not (folder / "adapter_config.json").is_file():
        inside = sorted(p.name for p in folder.glob("checkpoint-*"))
        hint = f"; point at a checkpoint inside it, e.g. {folder / inside[-1]}" if inside else ""
        raise UserError(f"{run_dir} holds no adapter (adapter_config.json): is the run finished?{hint}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"--out {out} already exists; choose a new folder or remove it first")
    files.check_folders_above(target)
    return folder, target


def merged_dtype(spec, choice: str):
    import torch

    from tinyalign.models.loading import weights_dtype

    # the run's model.dtype, else the hardware's: fp32 weights on CPU, where fp16 matmuls crawl
    return weights_dtype(spec) if choice == "auto" else getattr(torch, choice)


def merge(folder: Path, spec, dtype, dequantize: bool = False):
    """(the base in `dtype`, unquantised or dequantised, with the adapter added into its weights,
    whether it was dequantised)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tinyalign.models.loading import check_adapter_base, quantization_config, resolve_name

    check_adapter_base(folder, spec.name)
    if dequantize and spec.quantization == "none":
        raise UserError(f"--dequantize: {folder} was trained on an unquantised base; drop the flag")
    # On the CPU: merging needs the full weights in memory, not on the GPU. No quantization_config
    # unless asked (even None would override the one a pre-quantised checkpoint carries).
    quantized = {"quantization_config": quantization_config(spec)} if dequantize else {}
    try:
        base = AutoModelForCausalLM.from_pretrained(resolve_name(spec.name), dtype=dtype, **quantized)
    except OSError as e:
        raise UserError(f"cannot load the base model {spec.name}: {str(e).splitlines()[0]}") from None
    dequantized = getattr(base, "hf_quantizer", None) is not None
    if dequantized:
        # Asked for, or a checkpoint published pre-quantised: back to `dtype` first (the very values
        # the adapter was trained against), so the merge lands in full-precision weights.
        print(f"dequantising {spec.name} to {str(dtype).removeprefix('torch.')} before merging")
        base = base.dequantize(dtype=dtype)
    model = PeftModel.from_pretrained(base, str(folder))
    return model.merge_and_unload(), dequantized


def write_merged(folder: Path, spec, dtype, dequantize: bool, staging: Path) -> None:
    from tinyalign.models.loading import load_tokenizer

    model, dequantized = merge(folder, spec, dtype, dequantize)
    # A dequantised model still carries the record of its 4-bit loading, which save_pretrained would
    # try to run backwards (and fails on); its weights are plain tensors now, saved as they are.
    model.save_pretrained(staging, max_shard_size="2GB", save_original_format=not dequantized)
    # The run saved the tokenizer it trained with (pad token and chat template included).
    tokenizer = load_tokenizer(spec, source=str(folder) if (folder / "tokenizer_config.json").is_file() else None)
    tokenizer.save_pretrained(staging)
    for recipe in (folder / "recipe.yaml", folder.parent / "recipe.yaml"):
        if recipe.is_file():  # provenance: what trained these weights
            shutil.copy(recipe, staging / "recipe.yaml")
            break


def write_adapter(folder: Path, staging: Path) -> None:
    for name in ADAPTER_FILES:
        source = folder / name if (folder / name).is_file() else folder.parent / name
        if source.is_file():
            shutil.copy(source, staging / name)


def push(out: Path, repo: str, private: bool) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        api = HfApi()
        url = api.create_repo(repo, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(out), repo_id=repo, commit_message="tinyalign export")
    except LocalTokenNotFoundError:
        raise UserError("--push-to-hub: not logged in; run `hf auth login` or set HF_TOKEN "
                        f"(the export itself is in {out})") from None
    except HfHubHTTPError as e:
        raise UserError(f"--push-to-hub {repo}: {str(e).splitlines()[0]} (the export itself is in {out})") from None
    print(f"pushed to {url}")


@cli
def main(argv=None):
    args = parse_args(argv)
    folder, out = check_paths(args.run_dir, args.out)
    if args.dequantize and not args.merge:
        raise UserError("--dequantize applies to --merge; add --merge")
    spec = run_model_spec(folder)

    # Written into a hidden sibling and renamed at the end: a failed or killed export leaves no
    # half a model that would load and answer wrongly.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-partial-"))
    try:
        if args.merge:
            write_merged(folder, spec, merged_dtype(spec, args.dtype), args.dequantize, staging)
        else:
            write_adapter(folder, staging)
        if out.exists():
            out.rmdir()  # checked empty above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    what = "merged model" if args.merge else "adapter"
    print(f"saved {what} to {out}")
    if args.push_to_hub:
        push(out, args.push_to_hub, args.private)


if __name__ == "__main__":
    main()
