"""Load a base model (4-bit NF4, 8-bit or full precision) with a LoRA adapter on top.

Two backends: unsloth (fast kernels, CUDA only) and transformers + peft (everywhere). `auto`
picks unsloth when a CUDA GPU is present and unsloth imports. Unsloth patches TRL when it is
imported, so it is imported only on its own path, before TRL is.
"""

import importlib.util
import os
from pathlib import Path

from tinyalign.config.recipe import Model
from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.core.threads import use_cpu_threads
from tinyalign.models import tiny
from tinyalign.models.chat_template import align_generation, fix_special_tokens
from tinyalign.models.precision import Precision, choose, mark


def resolve_name(name: str) -> str:
    """`tiny:*` -> its local folder (built on first use); `pkg:*` or a `.gguf` file -> its converted
    folder (converted on first use, tinyalign.models.gguf); a path -> checked; else a hub id."""
    from tinyalign.models import gguf

    if tiny.is_tiny(name):
        return str(tiny.model_path(name))
    if gguf.is_packaged(name) or gguf.is_gguf(name):
        return str(gguf.model_path(name))
    if not looks_like_path(name):
        return name
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise UserError(f"model.name: local model folder not found: {name}")
    if not (folder / "config.json").is_file():
        raise UserError(f"model.name: {name} is not a model folder (no config.json); point at a folder saved "
                        "with save_pretrained, a .gguf file, or a hub id")
    return str(folder)


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or name.count("/") > 1


def adapter_dir(path: str, key: str = "model.adapter") -> Path:
    """An adapter is a folder with adapter_config.json: a run directory or one of its checkpoints."""
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        hint = "; is the run finished? point at a checkpoint-* folder inside it" if folder.is_dir() else ""
        raise UserError(f"{key}: no adapter (adapter_config.json) in {path}{hint}")
    return folder


def policy_dir(spec: Model) -> Path:
    """A reward model's `model.policy`: a policy's adapter (not another reward model's) trained on this base."""
    folder = adapter_dir(spec.policy, "model.policy")
    if files.read_run_file(folder / "adapter_config.json").get("task_type") == "SEQ_CLS":
        raise UserError(f"model.policy {spec.policy} is a reward model; name the policy run it starts from "
                        "(an SFT run), or continue this reward model with model.adapter")
    check_adapter_base(folder, spec.name, "model.policy")
    return folder


def check_adapter_base(adapter: Path, base_name: str, key: str = "model.adapter") -> None:
    """Refuse an adapter trained on another base: its shapes would not fit, or worse, silently would."""
    recipe = adapter / "recipe.yaml"
    if not recipe.is_file():
        recipe = adapter.parent / "recipe.yaml"
    if recipe.is_file():
        trained_on = (files.read_run_file(recipe).get("model") or {}).get("name")
    else:
        trained_on = files.read_run_file(adapter / "adapter_config.json").get("base_model_name_or_path")
    if not trained_on or trained_on == base_name or Path(str(trained_on)).name == Path(base_name).name:
        return
    # An adapter saved without a recipe names its base by the folder it was loaded from (for
    # `tiny:qwen2-1m`, its cache folder): the same base when base_name resolves to that folder.
    folder = Path(str(trained_on)).expanduser()
    if folder.is_dir():
        try:
            if Path(resolve_name(base_name)).expanduser().resolve() == folder.resolve():
                return
        except UserError:
            pass
    raise UserError(f"{key} {adapter} was trained on {trained_on}, not {base_name}; "
                        f"set model.name: {trained_on}")


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def backend_for(spec: Model) -> str:
    if spec.backend == "unsloth":
        if not has_cuda():
            raise UserError("model.backend=unsloth needs a CUDA GPU; use backend: transformers (or auto)")
        if importlib.util.find_spec("unsloth") is None:
            raise UserError("model.backend=unsloth: unsloth is not installed; pip install 'tinyalign[unsloth]'")
        return "unsloth"
    if spec.backend == "auto" and has_cuda() and importlib.util.find_spec("unsloth") is not None:
        return "unsloth"
    return "transformers"


def precision(spec: Model) -> Precision:
    """What this run computes in here, and why (models/precision.py)."""
    return choose(spec.dtype, has_cuda())


def compute_dtype(spec: Model):
    """The dtype the matmuls run in: bf16 on GPUs that have it, fp16 on older ones (T4); on CPU bf16 where
    it is native, else fp32; `model.dtype` overrides."""
    import torch

    return getattr(torch, precision(spec).compute)


def weights_dtype(spec: Model):
    """The dtype the base model's weights load in (fp32 on CPU, where bf16 runs under autocast)."""
    import torch

    return getattr(torch, precision(spec).weights)


def hardware_args(spec: Model) -> dict:
    """TrainingArguments that must agree with the hardware and the model's compute dtype: on CPU, `bf16`
    is accelerate's bf16 autocast over the fp32 weights.

    Gradient checkpointing trades compute for memory: worth it on a GPU, pure loss on CPU.
    """
    chosen = precision(spec)
    ddp = {"ddp_find_unused_parameters": False} if int(os.environ.get("WORLD_SIZE", 1)) > 1 else {}  # frozen base: no search
    if not has_cuda():
        return {"use_cpu": True, "bf16": chosen.autocast == "bfloat16", "fp16": False, "gradient_checkpointing": False,
                **ddp}
    return {"bf16": chosen.compute == "bfloat16", "fp16": chosen.compute == "float16", "gradient_checkpointing": True,
            **ddp}


def quantization_config(spec: Model):
    from transformers import BitsAndBytesConfig

    if spec.quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype(spec))
    if spec.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_tokenizer(spec: Model, source: str | None = None):
    """The tokenizer of the base (or of an adapter run, which saved its own): eos is the chat
    template's end of turn, and pad a different token."""
    from transformers import AutoTokenizer

    name = source or resolve_name(spec.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise UserError(f"model.name: cannot load {spec.name} ({unavailable(name, e)})") from None
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    if tokenizer.chat_template is None:
        raise UserError(f"{spec.name} has no chat template; set model.chat_template (Jinja) in the recipe")
    fix_special_tokens(tokenizer, spec.name)
    return tokenizer


def unavailable(name: str, error: Exception) -> str:
    """Why a model could not be loaded, and how to get it, in a few words."""
    if Path(name).is_dir():
        return f"{str(error).splitlines()[0]}"
    return (f"not in the local cache and the hub cannot be reached; `hf download {name} --local-dir DIR` "
            "where there is network and point model.name at DIR, or use a .gguf file or pkg:smollm2-135m-instruct")


def check_hub_model(name: str) -> None:
    """A hub id must be in the local cache or the hub reachable: asked in a second, before the
    hub client's retries would spend a minute and print its own warnings."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        if constants.HF_HUB_OFFLINE:
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as e:
        raise UserError(f"model.name: cannot load {name} ({unavailable(name, e)})") from None


def load_base(spec: Model, tokenizer=None, auto_class=None, **kwargs):
    """The base model, quantised as the recipe says, on the GPU when there is one; with `tokenizer`,
    its generation stops where that tokenizer's turns end. `auto_class` (default: a causal LM) and
    `kwargs` are for other heads, e.g. a reward model's one-output classifier."""
    import torch
    from transformers import AutoModelForCausalLM

    from tinyalign.core import console

    console.quiet()  # every command that loads a model, not only training: no "Loading weights" bar
    name = resolve_name(spec.name)
    use_cpu_threads()
    try:
        model = (auto_class or AutoModelForCausalLM).from_pretrained(
            name,
            quantization_config=quantization_config(spec),
            dtype=weights_dtype(spec),
            # each DDP process on its own GPU
            device_map={"": int(os.environ.get("LOCAL_RANK", 0))} if torch.cuda.is_available() else None,
            **kwargs,
        )
    except OSError as e:
        raise UserError(f"model.name: cannot load {spec.name} ({unavailable(name, e)})") from None
    if tokenizer is not None:
        align_generation(model, tokenizer)
    chosen = precision(spec)
    if chosen.autocast and "emulated" in chosen.reason:
        console.write(f"note: {spec.name} computes in {chosen.describe()}")
    return mark(model, chosen)


def lora_config(spec: Model, task_type: str = "CAUSAL_LM", **extra):
    from peft import LoraConfig

    return LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                      target_modules=spec.lora.target_modules, task_type=task_type, **extra)


def with_lora(base, spec: Model, gradient_checkpointing: bool, adapter: "Path | None" = None, **lora):
    """`base` ready to train with LoRA: the adapter in `adapter` continued, else a fresh one (`lora`:
    lora_config's task type and extras, e.g. a reward model's head)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if spec.quantization != "none":
        # fp32 norms and input grads for k-bit training; checkpointing only where memory is scarce (GPU)
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=gradient_checkpointing)
    if adapter is not None:
        return PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
    return get_peft_model(base, lora_config(spec, **lora))


def load_for_training(spec: Model, gradient_checkpointing: bool = False):
    """(model with a trainable LoRA adapter, tokenizer): a fresh adapter, or `model.adapter` continued."""
    if backend_for(spec) == "unsloth":
        return _load_unsloth(spec, gradient_checkpointing)
    tokenizer = load_tokenizer(spec)
    base = load_base(spec, tokenizer)
    folder = None
    if spec.adapter:
        folder = adapter_dir(spec.adapter)
        check_adapter_base(folder, spec.name)
    return with_lora(base, spec, gradient_checkpointing, folder), tokenizer


def _load_unsloth(spec: Model, gradient_checkpointing: bool):
    import unsloth  # noqa: F401  (must come first: it patches transformers, peft and TRL)
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec.adapter or resolve_name(spec.name),
        max_seq_length=spec.max_seq_length,
        load_in_4bit=spec.quantization == "4bit",
        load_in_8bit=spec.quantization == "8bit",
        dtype=compute_dtype(spec),
    )
    if spec.chat_template:
        tokenizer.chat_template = spec.chat_template
    fix_special_tokens(tokenizer, spec.name)
    align_generation(model, tokenizer)
    if not spec.adapter:
        model = FastLanguageModel.get_peft_model(
            model, r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
            target_modules=(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                            if spec.lora.target_modules == "all-linear" else spec.lora.target_modules),
            use_gradient_checkpointing="unsloth" if gradient_checkpointing else False,
        )
    return model, tokenizer


def load_with_adapters(spec: Model, adapters: dict[str, str]):
    """The base loaded once, with each named adapter attached (PEFT multi-adapter), for inference.

    Switch with `model.set_adapter(name)`; `with model.disable_adapter():` gives the base.
    """
    tokenizer = load_tokenizer(spec)
    model = load_base(spec, tokenizer)
    for name, path in adapters.items():
        folder = adapter_dir(path)
        check_adapter_base(folder, spec.name)
        model = use_adapter(model, folder, name)
    if adapters:
        model.set_adapter(next(iter(adapters)), inference_mode=True)  # the first is active, as PEFT leaves it
    model.eval()
    return model, tokenizer


def answering_as(model, name: str, adapters: dict):
    """A context in which a `load_with_adapters(spec, adapters)` model answers as adapter `name`, or as the
    base when `adapters` holds no such name."""
    from contextlib import nullcontext

    if name in adapters:
        model.set_adapter(name)
        return nullcontext()
    return model.disable_adapter() if adapters else nullcontext()  # with no adapter loaded it is the base


def use_adapter(model, folder, name: str, replace: "str | None" = None):
    """`model` (a base, or a base already carrying adapters) with the adapter in `folder` loaded as `name`
    and active, frozen, for inference. The base stays loaded once while adapters come and go; `replace`
    names an adapter to unload once `name` is in, so memory holds one at a time."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return PeftModel.from_pretrained(model, str(folder), adapter_name=name)
    model.load_adapter(str(folder), adapter_name=name)
    model.set_adapter(name, inference_mode=True)
    if replace:
        model.delete_adapter(replace)
    return model
