"""Text on the page, escaped exactly once for the context it is shown in."""

import html
import re


def as_text(text: str) -> str:
    """Text for Markdown prose or a chatbot: escaped once, so every character shows as written."""
    return html.escape(str(text), quote=False)


def code(text) -> str:
    """Text as a Markdown code span. Markdown escapes a code span's content itself, so it must not be
    escaped before (that showed `&lt;` for `<`); the fence is longer than any run of backticks inside."""
    text = str(text)
    fence = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
