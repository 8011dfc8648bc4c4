"""Shared by the arena app's tests: tiny adapters trained to answer one fixed text, and the app itself
started on 127.0.0.1 for a browser.

    runs = trained_adapters()                 # {"aaa": dir, "bbb": dir}, trained once per process
    app = start_app({"aaa": runs["aaa"], "bbb": runs["bbb"]}, db=tmp_path / "prefs.sqlite")
    app.url ...; app.stop()

Each run directory looks like one `python -m tinyalign.sft` writes (adapter + recipe.yaml), so the app
reads its base from the recipe, as it does for real runs.
"""

import atexit
import contextlib
import functools
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = "tiny:qwen2-1m"

# What each test adapter is trained to answer, whatever it is asked. A few dozen steps teach the tiny
# model the letter, not always where to stop, so tests expect "AAA..." and never a "B" (and vice versa).
ANSWERS = {
    "aaa": "AAA",
    "bbb": "BBB",
}

# Varied prompts, so the adapter learns "always answer X" rather than an answer to one question.
_WORDS = ["hello", "2+2?", "what is 12+34", "tell me a joke", "why", "ok", "59-17", "name a colour",
          "write a poem", "<b>bold</b>", "thanks", "what did you say?", "again", "x", "123"]


TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


def _prompts(rng: random.Random, n: int) -> list[list[dict]]:
    """Single- and two-turn chats, some with a system prompt, as the arena sends them."""
    chats = []
    for _ in range(n):
        chat = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.3 else []
        if rng.random() < 0.3:
            chat += [{"role": "user", "content": rng.choice(_WORDS)},
                     {"role": "assistant", "content": rng.choice(list(ANSWERS.values()))}]
        chat.append({"role": "user", "content": " ".join(rng.choices(_WORDS, k=rng.randint(1, 3)))})
        chats.append(chat)
    return chats


def train_adapter(out: Path, answer: str, *, steps: int = 30, seed: int = 0, lr: float = 1e-2) -> Path:
    """A LoRA on the 4-bit tiny base that answers `answer` to any chat, saved as a run directory."""
    import torch

    from tinyalign.config import recipe as recipes
    from tinyalign.models import loading as models

    # LoRA on the output layer too: the tiny base's logits are too flat for the hidden layers alone
    # to make one letter win within a few dozen steps.
    spec = recipes.Model(name=BASE, quantization="4bit",
                         lora=recipes.Lora(r=16, alpha=32, dropout=0.0, target_modules=TARGETS))
    torch.manual_seed(seed)
    policy, tokenizer = models.load_for_training(spec)
    rng = random.Random(seed)
    rows = []
    for chat in _prompts(rng, 64):
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False).input_ids
        rows.append((prompt_ids, answer_ids))
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, a) in enumerate(rows):
        ids[i, :len(p) + len(a)] = torch.tensor(p + a)
        labels[i, len(p):len(p) + len(a)] = torch.tensor(a)  # loss on the answer only
        mask[i, :len(p) + len(a)] = 1
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    policy.train()
    for step in range(steps):
        batch = slice(step * 16 % len(rows), step * 16 % len(rows) + 16)
        loss = policy(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out, save_embedding_layers=False)  # the base embeddings are unchanged
    tokenizer.save_pretrained(out)
    recipe = recipes.Recipe(method="sft", model=spec, data=recipes.Data(source="tests/helpers_app.py"),
                            generation={"max_new_tokens": len(answer) + 8, "temperature": 0.0}, output_dir=str(out))
    recipes.write(recipe, out / "recipe.yaml")
    return out


@contextlib.contextmanager
def one_torch_thread():
    """On a 2-core box shared with a browser or another process, torch's default two threads spin
    against each other (measured: a tiny training step 0.14 s with one thread, 5 s with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def trained_adapters() -> dict[str, Path]:
    """The test adapters as run directories, trained once per test process (both app test files share
    them; ~10 s each on one CPU core)."""
    root = Path(tempfile.mkdtemp(prefix="tinyalign-app-adapters-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with one_torch_thread():
        return {name: train_adapter(root / name, answer, seed=i) for i, (name, answer) in enumerate(ANSWERS.items())}


def read_votes(db) -> list[dict]:
    """The vote rows straight from SQLite, as a user's `sqlite3 prefs.sqlite` would show them."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM votes ORDER BY id")]


# ---------------------------------------------------------------- the app, for a browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self):
        """End the app process (this one only) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_app(adapters: dict[str, Path], db: Path, *extra: str, timeout: float = 180) -> RunningApp:
    """`python app.py --adapter NAME=DIR ... --db DB` on a free port of 127.0.0.1; returns when it serves.

    Runs the real command line in its own process, so what is tested is what a user starts.
    """
    port = free_port()
    command = [sys.executable, str(REPO / "app.py"), *(f"--adapter={n}={d}" for n, d in adapters.items()),
               "--db", str(db), "--port", str(port), *extra]
    log = Path(db).with_name(f"app-{port}.log")
    env = {"OMP_NUM_THREADS": "1", **os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
    app = RunningApp(f"http://127.0.0.1:{port}/", process, log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with status {process.returncode}:\n{app.output()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    return app
        except OSError:
            time.sleep(0.5)
    app.stop()
    raise RuntimeError(f"app did not answer on {app.url} within {timeout:.0f} s:\n{app.output()}")
