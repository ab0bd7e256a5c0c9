""".dockerignore, as the docker CLI applies it when it packs a build context (the Engine's
legacy builder leaves that to the client, so Dockyard applies it when it packs the context).

Each line is a pattern relative to the context root (`*`, `?`, `[...]`, `**` for any number
of directories); a `!` line brings matching paths back; the last matching line wins; a
pattern that matches a directory excludes everything below it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    exclude: bool  # False for a `!` exception


def _translate(pattern: str) -> re.Pattern[str]:
    """A compiled regular expression matching exactly the paths `pattern` names."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append(_one(pattern, i))
            i += len(_token(pattern, i))
    return re.compile("".join(out), re.DOTALL)


def _token(pattern: str, i: int) -> str:
    if pattern[i] == "\\" and i + 1 < len(pattern):
        return pattern[i:i + 2]
    if pattern[i] == "[" and "]" in pattern[i + 2:]:
        return pattern[i:pattern.index("]", i + 2) + 1]
    return pattern[i]


def _one(pattern: str, i: int) -> str:
    piece = _token(pattern, i)
    if piece == "*":
        return "[^/]*"
    if piece == "?":
        return "[^/]"
    if piece.startswith("[") and len(piece) > 1:
        body = piece[1:-1]
        negated = body.startswith(("!", "^"))
        inner = re.escape(body[1:] if negated else body).replace("\\-", "-")
        return f"[{'^' if negated else ''}{inner}]"
    return re.escape(piece[-1])


def parse(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        cleaned = posixpath.normpath(line.lstrip("!").strip().lstrip("/") or ".")
        if cleaned != ".":
            rules.append(Rule(_translate(cleaned), exclude))
    return rules


def _parents_and_self(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]


def ignored_by(rules: list[Rule]) -> Callable[[str], bool]:
    """Whether a context path (relative, '/'-separated) is left out of the context."""
    def ignored(path: str) -> bool:
        verdict = False
        for rule in rules:
            if any(rule.pattern.fullmatch(part) for part in _parents_and_self(path)):
                verdict = rule.exclude
        return verdict
    return ignored


def for_app(app_dir: Path, always: tuple[str, ...] = ("Dockerfile", ".dockerignore"),
            never: tuple[str, ...] = ()) -> Callable[[str], bool]:
    """The app's .dockerignore (absent, or a link: nothing ignored); paths in `always` are
    packed anyway, as the docker CLI does, and those under `never` are always left out."""
    path = app_dir / ".dockerignore"
    text = "" if path.is_symlink() or not path.is_file() else path.read_text(errors="replace")
    ignored = ignored_by(parse(text))
    left_out = ignored_by(parse("\n".join(never)))
    return lambda name: left_out(name) or (name not in always and ignored(name))
