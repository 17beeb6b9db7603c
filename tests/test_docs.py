"""README.md and the pages under docs/ against the repository: links resolve, commands parse, numbers have a source.

Checked pages: README.md and every docs/*.md. The files under docs/results/ are not: they are records of runs (each
names the command and commit that produced it, then the run's own table), to be kept as they were run, not updated
when the command line changes; they hold no Markdown links.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 250
OPENING_COMMANDS = (
    "pip install -e . && mini-cal compare",
    "pip install -e '.[test]' && python -m pytest",  # CI (.ci/run) runs exactly this
)
HEADLINE = "## The headline result"


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


# --- reading Markdown --------------------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The prose of a page (fenced code blocks blanked, so line numbers hold) and its code blocks as (language,
    body)."""
    prose, blocks, fence, lang, body = [], [], None, "", []
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence, lang, body = stripped[:3], stripped[3:].strip(), []
            prose.append("")
        elif fence is not None and stripped.startswith(fence):
            blocks.append((lang, "\n".join(body)))
            fence = None
            prose.append("")
        elif fence is not None:
            body.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def _without_inline_code(prose: str) -> str:
    return re.sub(r"`[^`\n]*`", "", prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: Markdown markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def _anchors(page: Path) -> frozenset:
    prose, _ = _split(page.read_text(encoding="utf-8"))
    seen: dict = {}
    anchors = set()
    for line in prose.splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline or reference-style link outside code."""
    prose, _ = _split(page.read_text(encoding="utf-8"))
    found = []
    for number, line in enumerate(_without_inline_code(prose).splitlines(), start=1):
        for match in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            found.append((number, match.group(1)))
        match = re.match(r"\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", line)
        if match:
            found.append((number, match.group(1)))
    return found


def _broken_links(page: Path) -> list[str]:
    broken = []
    for number, target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        where = page if not path_part else (page.parent / path_part).resolve()
        if not where.exists():
            broken.append(f"{_name(page)}:{number}: {target} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in _anchors(where):
            broken.append(f"{_name(page)}:{number}: {target} (no heading #{anchor} in {where.name})")
    return broken


def _bash_commands(page: Path) -> list[str]:
    """Every command line of the page's bash blocks, continuation lines joined (a trailing backslash, or an
    indented line under a command)."""
    _, blocks = _split(page.read_text(encoding="utf-8"))
    commands = []
    for lang, body in blocks:
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line[:1].isspace() and commands and line.strip():
                commands[-1] += " " + line.strip()
            elif line.strip():
                commands.append(line.strip().removeprefix("$ "))
    return commands


def _mini_cal_argvs(command: str) -> list[list[str]]:
    """The argument lists of every `mini-cal ...` in one shell line (commands joined by &&, ||, ; or |)."""
    tokens = shlex.split(command, comments=True)
    argvs, current = [], []
    for token in tokens + [";"]:
        if token in ("&&", "||", ";", "|"):
            if current[:1] == ["mini-cal"]:
                argvs.append(current[1:])
            current = []
        else:
            current.append(token)
    return argvs


def _inline_mini_cal(page: Path) -> list[str]:
    """Every `mini-cal ...` span of inline code in the page's prose (a span may wrap across lines)."""
    prose, _ = _split(page.read_text(encoding="utf-8"))
    return [" ".join(span.split()) for span in re.findall(r"`(mini-cal [^`]+)`", prose)]


# --- the real command line ---------------------------------------------------------------------------------------


@functools.cache
def _parser():
    from mini_cal.lab.cli import build_parser

    return build_parser()


def _subparsers() -> dict:
    import argparse

    (action,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def _options(command: str) -> set:
    return {s for a in _subparsers()[command]._actions for s in a.option_strings}


def _is_synopsis(argv: list[str]) -> bool:
    """A usage line (`[--seeds 10]`, `cal|arl|...`, `NAME ...`) rather than a command to run as written."""
    return any(c in token for token in argv for c in "[]|") or "..." in argv


def _parse_errors(argv: list[str]) -> list[str]:
    """Why ``mini-cal ARGV`` would not run as written: the parser's own error, or an unknown method or preset."""
    from mini_cal import synthetic
    from mini_cal.methods import method_names

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = _parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and "--help" in argv:
            return []
        return [stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else f"exit {exc.code}"]
    errors = []
    known = set(method_names())
    errors += [f"unknown method {m!r}" for m in getattr(args, "methods", None) or () if m not in known]
    preset = getattr(args, "preset", None)
    if preset is not None and preset not in synthetic.PRESETS:
        errors.append(f"unknown preset {preset!r}")
    return errors


def _option_errors(argv: list[str]) -> list[str]:
    """For a usage line or a prose mention: the subcommand exists and every --option is one of its options."""
    if not argv or argv[0].startswith("-"):
        return []  # `mini-cal --help`
    if argv[0] not in _subparsers():
        return [f"no subcommand {argv[0]!r}"]
    options = _options(argv[0])
    used = {m.group(0) for token in argv[1:] for m in re.finditer(r"--[a-z][a-z0-9-]*", token)}
    return [f"{argv[0]} has no option {o}" for o in sorted(used - options)]


# --- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_resolve(page):
    assert _broken_links(page) == []


def test_link_checker_catches_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n\ntext\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [ok](#mine) [web](https://example.org)\n\n## Mine\n\n"
        "[gone](missing.md) [bad anchor](there.md#no-such) `[in code](missing2.md)`\n"
        "```\n[in a block](missing3.md)\n# not a heading\n```\n[bad self](#not-a-heading)\n"
    )
    broken = _broken_links(page)
    assert len(broken) == 3, broken
    assert "missing.md" in broken[0] and "#no-such" in broken[1] and "#not-a-heading" in broken[2]


def test_slugs_follow_github():
    assert _slug("Example: handwritten digits, two views") == "example-handwritten-digits-two-views"
    assert _slug("What each part of CAL does") == "what-each-part-of-cal-does"
    assert _slug("The `mini-cal` command") == "the-mini-cal-command"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in _links(README)}
    assert [_name(p) for p in PAGES[1:] if p.resolve() not in linked] == []


COMMANDS = [(page, argv) for page in PAGES for line in _bash_commands(page) for argv in _mini_cal_argvs(line)]


@pytest.mark.parametrize("page, argv", COMMANDS, ids=[f"{_name(p)}: mini-cal {' '.join(a)}"[:90] for p, a in COMMANDS])
def test_bash_block_commands_parse(page, argv):
    """Every `mini-cal ...` in a bash block parses with the real parser (nothing runs); a usage line with
    [optional] parts or alternatives has only options its subcommand knows."""
    errors = _option_errors(argv) if _is_synopsis(argv) else _parse_errors(argv)
    assert errors == [], f"{_name(page)}: mini-cal {' '.join(argv)}"


def test_bash_blocks_hold_commands():
    assert len(COMMANDS) >= 10  # the extraction finds them (README's first line, cli.md, data.md, checkpoints.md)
    assert ["compare"] in [argv for page, argv in COMMANDS if page == README]


def test_command_checks_catch_stale_commands():
    assert _parse_errors(["compare", "--seeds", "3"]) == []
    assert _parse_errors(["compare", "--no-such-option"]) != []
    assert _parse_errors(["compare", "--methods", "cal", "no-such-method"]) == ["unknown method 'no-such-method'"]
    assert _parse_errors(["train", "--preset", "no-such-preset"]) == ["unknown preset 'no-such-preset'"]
    assert _parse_errors(["no-such-command"]) != []
    assert _option_errors(["sweep", "[--budget", "8]", "[--seeds", "3]"]) == ["sweep has no option --seeds"]
    assert _option_errors(["nope"]) == ["no subcommand 'nope'"]
    assert _mini_cal_argvs("pip install -e . && mini-cal compare --jobs 2   # comment") == [["compare", "--jobs", "2"]]


INLINE = [(page, span) for page in PAGES for span in _inline_mini_cal(page)]


@pytest.mark.parametrize("page, span", INLINE, ids=[f"{_name(p)}: {s}"[:90] for p, s in INLINE])
def test_inline_commands_name_real_options(page, span):
    """A `mini-cal ...` mentioned in prose may hold placeholders (`--epochs N`), so it is not parsed; its
    subcommand and options must exist."""
    argv = shlex.split(span.replace("'", ""))[1:]
    assert _option_errors(argv) == [], f"{_name(page)}: {span}"


def test_cli_page_lists_every_option():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [
        f"{command} {option}"
        for command in _subparsers()
        for option in sorted(_options(command) - {"-h", "--help"})
        if not re.search(re.escape(option) + r"(?![\w-])", text)
    ]
    assert missing == []
    assert [c for c in _subparsers() if f"`{c}`" not in text and f"mini-cal {c}" not in text] == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_python_blocks_import_what_exists(page):
    """The imports of every python block resolve: a renamed or moved function fails here, not in a reader's
    session."""
    _, blocks = _split(page.read_text(encoding="utf-8"))
    missing = []
    for lang, body in blocks:
        if lang != "python":
            continue
        for line in body.splitlines():
            match = re.match(r"from\s+(\S+)\s+import\s+(.+)$", line) or re.match(r"import\s+(\S+)()$", line)
            if not match or not match.group(1).startswith("mini_cal"):
                continue
            module = importlib.import_module(match.group(1))
            for name in filter(None, (n.split(" as ")[0].strip() for n in match.group(2).split(","))):
                if not hasattr(module, name):
                    try:
                        importlib.import_module(f"{match.group(1)}.{name}")
                    except ImportError:
                        missing.append(f"{match.group(1)}.{name}")
    assert missing == [], _name(page)


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    body = [line for line in lines[1:] if line.strip()]
    assert lines[0].startswith("# ") and body[0] == "```bash", "README opens with its two commands"
    first_two = [line.split("#")[0].strip() for line in body[1:3]]
    assert first_two == list(OPENING_COMMANDS)
    assert body[3] == "```"


def test_ci_runs_the_readmes_test_command():
    assert OPENING_COMMANDS[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e-?\d+)?(?: ± \d+\.\d+)?|(?<![\w/])\d+/\d+/\d+(?![\w/])")


def test_headline_numbers_come_from_the_named_results_file():
    """Every number of the README's headline result (means with their spread, differences, p values, wins/losses)
    appears as written in the results file the section names."""
    prose, _ = _split(README.read_text(encoding="utf-8"))
    section = _section(prose, HEADLINE)
    sources = sorted({t for t in re.findall(r"\]\((docs/results/[^)#]+\.md)\)", section)})
    assert sources, "the headline result names its results file"
    source = "\n".join((ROOT / s).read_text(encoding="utf-8") for s in sources)
    numbers = NUMBER.findall(section)
    assert len(numbers) >= 20
    assert [n for n in numbers if n not in source] == []
    assert "0.123 ± 0.456" not in source and NUMBER.findall("| x | 0.123 ± 0.456 | -0.01 | 9/1/0 |") == [
        "0.123 ± 0.456",
        "-0.01",
        "9/1/0",
    ]
