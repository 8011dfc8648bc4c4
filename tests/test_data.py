"""Any source -> the trainer's columns: local file types, folders, vote stores, templates, splits."""

import json

import pandas as pd
import pytest

from tinyalign.config.recipe import Data
from tinyalign.core.errors import UserError
from tinyalign.data import loading as data
from tinyalign.data.messages import MAX_CHARS, message_text, task_text
from tinyalign.prefs import VoteStore

ROWS = [{"question": f"{i}+1", "answer": str(i + 1)} for i in range(10)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_local_file_types_map_to_prompt_completion(tmp_path, suffix):
    path = tmp_path / f"qa{suffix}"
    frame = pd.DataFrame(ROWS)
    {".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".json": lambda: path.write_text(json.dumps(ROWS)),
     ".csv": lambda: frame.to_csv(path, index=False),
     ".parquet": lambda: frame.to_parquet(path)}[suffix]()
    spec = Data(source=str(path), prompt="What is {question}?", completion="{answer}", system="Be brief.", test_size=2)
    train, test = data.load(spec, "sft")
    assert len(train) == 8 and len(test) == 2
    row = train[0]
    assert row["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert row["prompt"][1]["content"].startswith("What is ") and row["completion"][0]["role"] == "assistant"


def test_grpo_rows_carry_the_reference_answer(tmp_path):
    spec = Data(source="tiny:addition", test_split="test", prompt="{question}", answer="{answer}", limit=5)
    train, test = data.load(spec, "grpo")
    assert len(train) == 5 and len(test) == 500
    assert train[0]["answer"] == str(eval(train[0]["prompt"][-1]["content"]))


def test_messages_column_passes_through(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    train, _ = data.load(Data(source=str(path), messages="messages", system="S"), "sft")
    assert [m["role"] for m in train[0]["messages"]] == ["system", "user", "assistant"]


def test_vote_store_is_a_dpo_source(tmp_path):
    db = tmp_path / "prefs.sqlite"
    with VoteStore(db) as store:
        store.record(conversation=[{"role": "user", "content": "2+2"}], response_a="4", response_b="5",
                     model_a="sft", model_b="base", vote="a")
    train, _ = data.load(Data(source=str(db)), "dpo")
    assert train[0]["chosen"] == [{"role": "assistant", "content": "4"}]
    assert train[0]["rejected"] == [{"role": "assistant", "content": "5"}]


def test_missing_column_names_the_columns_it_has(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with pytest.raises(UserError, match=r"column 'query'.*its columns: question, answer"):
        data.load(Data(source=str(path), prompt="{query}", completion="{answer}"), "sft")


@pytest.mark.parametrize("name, text, says", [
    ("qa.jsonl", '{"question": "1+1", "answer": "2"}\n{"question": \n', "JSON parse error"),
    ("qa.csv", 'question,answer\n"1+1,2\n', "EOF inside string"),
])
def test_a_file_that_does_not_parse_gets_the_parsers_reason_once(tmp_path, capfd, name, text, says):
    import datasets

    path = tmp_path / name
    path.write_text(text)
    verbosity = datasets.logging.get_verbosity()
    with pytest.raises(UserError) as err:
        data.load(Data(source=str(path), prompt="{question}", completion="{answer}"), "sft")
    assert str(err.value).startswith(f"data.source: cannot read {path}: ") and says in str(err.value)
    assert "Failed to" not in capfd.readouterr().err  # datasets' own log line of the same error
    assert datasets.logging.get_verbosity() == verbosity


def test_a_template_that_cannot_be_filled_and_a_text_messages_column_are_named(tmp_path):
    with pytest.raises(UserError, match=r"data.prompt: template '\{question!z\}' cannot be filled"):
        data.load(Data(source="tiny:addition", prompt="{question!z}", completion="{answer}", limit=2), "sft")
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    with pytest.raises(UserError, match=r"data.messages: column 'question' should hold chat messages"):
        data.load(Data(source=str(path), messages="question"), "sft")


def test_missing_split_lists_the_splits(tmp_path):
    with pytest.raises(UserError, match="no split 'validation'.*test, train"):
        data.load(Data(source="tiny:addition", test_split="validation", prompt="{question}", completion="{answer}"), "sft")


def test_message_text_is_one_rule_for_completions_prompts_and_pairs():
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": [{"type": "text", "text": "4"}]}]
    assert message_text("plain") == "plain" and message_text(None) == ""
    assert message_text(chat) == "4"  # a chat completion: its last message, parts joined
    assert message_text(chat, join=" ") == "2+2? 4" and data.text_of(chat) == "2+2?4"
    assert message_text({"text": "t"}) == "t" and message_text([]) == ""
    assert task_text(chat) == "USER: 2+2?\nASSISTANT: 4"
    assert task_text("x" * (MAX_CHARS + 5)) == "x" * MAX_CHARS
    assert task_text([{"role": "user", "content": "q"}] * 2000).endswith("USER: q")
