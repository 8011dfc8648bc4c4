"""Chat messages to text and back: the one rule for the text of a completion, a prompt or a message,
used by the rewards, the judge, the pair files, the doctor and the app alike."""

from tinyalign.models.chat_template import as_message  # noqa: F401  (text as messages, for this room's callers)

MAX_CHARS = 4000  # of a task or an answer shown to a judge: a runaway answer must not blow its context


def message_text(value, join: str | None = None) -> str:
    """The text of a completion, a prompt or one message, as TRL and the data files carry them.

    A string is its own text. A message (`{"role": ..., "content": ...}`, or `{"text": ...}`) gives its
    content; a content that is a list of parts (`{"type": "text", "text": ...}`) gives their texts joined.
    A list of messages gives its last message's text (a chat completion's reply), or, with `join`, the
    texts of all its messages joined by it.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if join is not None:
            return join.join(message_text(m) for m in value if isinstance(m, dict))
        return message_text(value[-1]) if value else ""
    if isinstance(value, dict):
        content = value.get("content", value.get("text", ""))
        if isinstance(content, list):
            return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
        return "" if content is None else str(content)
    return "" if value is None else str(value)


def task_text(prompt) -> str:
    """The task as a judge reads it: a plain prompt, or a chat's turns as `ROLE: content` lines, cut to
    MAX_CHARS (a long chat keeps its end, where the question is)."""
    if isinstance(prompt, str):
        return prompt[:MAX_CHARS]
    turns = [m for m in prompt if isinstance(m, dict)]
    if len(turns) == 1:
        return message_text(turns)[:MAX_CHARS]
    return "\n".join(f"{m.get('role', 'user').upper()}: {message_text(m)}" for m in turns)[-MAX_CHARS:]
