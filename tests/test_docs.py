"""The README and the guides under docs/: links resolve, named commands exist, the README stays short.

Fast and offline: reads markdown files and `tinyalign.__main__.COMMANDS`, loads no model.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from tinyalign.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250
CPU_NAMES = re.compile(r"Xeon|EPYC|Ryzen|Core i[3579]")

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s+(\S+)", re.MULTILINE)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# `python -m tinyalign.X` (also `accelerate launch ... -m tinyalign.X`), and `tinyalign X` where a command
# starts: at the start of a line or code span, after `$`, `&&`, `;`, `|` or `(`.
MODULE_COMMAND = re.compile(r"-m\s+tinyalign\.([\w<>]+)")
CLI_COMMAND = re.compile(r"(?:^|[;&|(]\s*|\$\s+)tinyalign\s+([\w<>-]+)")


def split_code(text: str) -> tuple[str, list[str]]:
    """(the prose with code removed, the code: each fenced block's lines and each inline span)."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            code.append(line)
            continue
        code += [span for _, span in INLINE_CODE.findall(line)]
        prose.append(INLINE_CODE.sub(lambda m: "x" * len(m.group(0)), line))
    return "\n".join(prose), code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 ... for repeated headings."""
    found, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    return LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def broken_links(path: Path) -> list[str]:
    """The relative links of one markdown file that do not resolve, each with the reason."""
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no such file {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
    return broken


def named_commands(path: Path) -> list[tuple[str, str]]:
    """(how it was written, the command name) for every tinyalign command in the file's code."""
    _, code = split_code(path.read_text(encoding="utf-8"))
    found = []
    for piece in code:
        found += [(f"python -m tinyalign.{name}", name) for name in MODULE_COMMAND.findall(piece)]
        found += [(f"tinyalign {name}", name) for name in CLI_COMMAND.findall(piece.strip())]
    return found


def is_placeholder(name: str) -> bool:
    return name.isupper() or name.startswith("<") or name.startswith("-")


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_relative_links_resolve(path):
    assert broken_links(path) == [], f"{page_id(path)} has broken links"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_named_commands_exist(path):
    unknown = sorted({written for written, name in named_commands(path)
                      if not is_placeholder(name) and name not in COMMANDS})
    assert unknown == [], f"{page_id(path)} names commands that tinyalign.__main__.COMMANDS lacks"


def test_every_command_is_a_module():
    for name, (module, _) in COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, f"command {name}: no module {module}"


def test_readme_lists_every_command():
    written = {name for _, name in named_commands(README)}
    assert sorted(set(COMMANDS) - written) == [], "README.md's command table misses these commands"


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it to {README_MAX_LINES} and move the rest to docs/"


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_no_cpu_model_names(path):
    hits = [line for line in path.read_text(encoding="utf-8").splitlines() if CPU_NAMES.search(line)]
    assert hits == [], f"{page_id(path)} names CPU models (the hardware goes in bench/RESULTS.md)"


# The checks themselves, on made-up pages: a broken link or an unknown command must fail them.


def test_the_link_check_catches_a_broken_link(tmp_path):
    (tmp_path / "other.md").write_text("# A heading, with `code`\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-heading-with-code) [ok](other.md#twice-1) [ok](#here) [web](https://x.org/y)\n"
        "# Here\n"
        "`[in code](missing.md)`\n```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) [bad local](#nowhere)\n",
        encoding="utf-8",
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == ["missing.md", "other.md#nowhere", "#nowhere"]


def test_the_command_check_catches_an_unknown_command(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `tinyalign grpo RECIPE` or `python -m tinyalign.app`, not `tinyalign trian RECIPE`.\n"
        "```bash\ncd /tmp && tinyalign demo\npython -m tinyalign.evalute RUN\nfrom tinyalign import rewards\n"
        "tinyalign COMMAND --help\n```\n",
        encoding="utf-8",
    )
    names = [name for _, name in named_commands(page) if not is_placeholder(name)]
    assert sorted(names) == ["app", "demo", "evalute", "grpo", "trian"]
    assert sorted(name for name in names if name not in COMMANDS) == ["evalute", "trian"]
