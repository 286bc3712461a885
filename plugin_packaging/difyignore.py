"""Which files the plugin daemon packages: its .difyignore rule, ported so our identifier equals its checksum.

dify-plugin-daemon (pkg/plugin_packager/decoder/fs.go) reads `.difyignore`, or `.gitignore` when there is
none, trims every line, skips blank and `#` lines, and parses the rest with go-git's
`gitignore.ParsePattern`. Walking the tree, it leaves a path out as soon as one pattern answers Exclude, and
does not enter a folder left out. A negated pattern (`!name`) answers Include, which that loop never acts
on: so, unlike git, a negation never brings a path back, wherever it stands. The matching below follows
go-git's `simpleNameMatch` (a pattern without `/` matches any component of the path) and `globMatch`.
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

IGNORE_FILES = (".difyignore", ".gitignore")


@dataclass(frozen=True)
class Pattern:
    text: str
    segments: tuple[str, ...]
    negated: bool
    dir_only: bool
    is_glob: bool


def parse(line: str) -> Pattern:
    """go-git's ParsePattern, for an empty domain."""
    text, body = line, line
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    if not body.endswith("\\ "):
        body = body.rstrip(" ")
    dir_only = body.endswith("/")
    if dir_only:
        body = body[:-1]
    return Pattern(text, tuple(body.split("/")), negated, dir_only, "/" in body)


def read_patterns(root: Path) -> list[Pattern]:
    for name in IGNORE_FILES:
        if (root / name).is_file():
            lines = (root / name).read_text(encoding="utf-8").split("\n")
            return [parse(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]
    return []


@lru_cache(maxsize=512)
def _component_regex(glob: str) -> re.Pattern:
    """One path component against one pattern segment (wildmatch without WM_PATHNAME)."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if char == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            start = i + 1
            negate = start < len(glob) and glob[start] in "!^"
            first = start + 1 if negate else start
            end = glob.find("]", first + 1)  # a ']' right after '[' or '[!' is a member
            if end < 0:
                return re.compile(r"(?!)")  # wildmatch aborts on an unclosed class: nothing matches
            members = glob[first:end].replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(("[^" if negate else "[") + members + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _wild(segment: str, name: str) -> bool:
    return _component_regex(segment).fullmatch(name) is not None


def _simple_match(pattern: Pattern, path: list[str], is_dir: bool) -> bool:
    for i, name in enumerate(path):
        if not _wild(pattern.segments[0], name):
            continue
        if pattern.dir_only and not is_dir and i == len(path) - 1:
            return False
        if i < len(path) - 1 and pattern.negated:
            continue
        return True
    return False


def _glob_match(pattern: Pattern, path: list[str], is_dir: bool) -> bool:
    matched = can_traverse = trailing_star = False
    last = len(pattern.segments) - 1
    for i, segment in enumerate(pattern.segments):
        if segment == "":
            can_traverse = False
            continue
        if segment == "**":
            if i == last:
                matched = trailing_star = bool(path) or is_dir
                break
            can_traverse = True
            continue
        if not path:
            return False
        if can_traverse:
            can_traverse = False
            while path:
                head, path = path[0], path[1:]
                if _wild(segment, head):
                    matched = True
                    break
                if not path:
                    return False
        else:
            if not _wild(segment, path[0]):
                return False
            matched, path = True, path[1:]
            if not path and i < last:  # a file cannot match a pattern that goes deeper
                matched = False
    if matched and (not path or trailing_star):
        if pattern.dir_only and not is_dir:
            matched = False
    elif matched and pattern.negated:
        matched = False
    return matched


def matches(pattern: Pattern, path: list[str], is_dir: bool) -> bool:
    """go-git's Match(path, isDir) != NoMatch."""
    return (_glob_match if pattern.is_glob else _simple_match)(pattern, list(path), is_dir)


def excluded(patterns: list[Pattern], path: list[str], is_dir: bool) -> bool:
    """The daemon's rule: out on the first pattern that excludes; a negation (Include) changes nothing."""
    return any(not p.negated and matches(p, path, is_dir) for p in patterns)


def ineffective_negations(patterns: list[Pattern]) -> list[str]:
    return [p.text for p in patterns if p.negated]
