"""PROMPT_BLOCKLIST: words, phrases and regular expressions a prompt may not contain.

File format, one entry a line (UTF-8): blank lines and lines starting with `#` are skipped; `re:<pattern>`
is a Python regular expression (matched case-insensitively against the NFKC form); anything else is a word or phrase. Matching is case-insensitive and
width-insensitive (NFKC: `ＮＵＤＥ` is `nude`). A term that starts or ends with a Latin letter or digit must
stand as a whole word there (`ass` does not match `class`); Chinese, Japanese and other unspaced scripts
match anywhere, since they put no spaces between words. Spaces inside a phrase match any whitespace.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_WORD_EDGE = re.compile(r"[A-Za-z0-9]")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _term_regex(term: str) -> str:
    body = r"\s+".join(re.escape(word) for word in term.split())
    if _WORD_EDGE.match(term[0]):
        body = r"(?<![A-Za-z0-9])" + body
    if _WORD_EDGE.match(term[-1]):
        body += r"(?![A-Za-z0-9])"
    return body


@dataclass(frozen=True)
class Blocklist:
    entries: tuple[tuple[str, re.Pattern, bool], ...]  # (as written, compiled, is a regex)

    @classmethod
    def from_lines(cls, lines: list[str], source: str = "PROMPT_BLOCKLIST") -> Blocklist:
        entries = []
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("re:"):
                try:
                    entries.append((line, re.compile(line[3:].strip(), re.IGNORECASE), True))
                except re.error as exc:
                    raise ValueError(f"{source}:{number}: bad regular expression {line[3:]!r}: {exc}") from exc
            else:
                term = normalize(line)
                entries.append((line, re.compile(_term_regex(term)), False))
        return cls(tuple(entries))

    @classmethod
    def from_file(cls, path: str | Path) -> Blocklist:
        return cls.from_lines(Path(path).read_text(encoding="utf-8-sig").splitlines(), str(path))

    def match(self, prompt: str) -> str | None:
        """The first entry (as written in the file) that the prompt contains, or None."""
        wide = unicodedata.normalize("NFKC", prompt or "")
        folded = wide.casefold()
        for written, pattern, is_regex in self.entries:
            if pattern.search(wide if is_regex else folded):
                return written
        return None

    def __len__(self) -> int:
        return len(self.entries)
