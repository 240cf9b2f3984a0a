"""A reading-age hint for an announcement's Markdown (V3, issue 18.4). Pure functions.

GOV.UK writes for a reading age of about 9. The Flesch-Kincaid grade (textstat) is a US school grade;
a UK reading age is that grade plus 5. The hint is advice, never a block: short sentences and common
words help parents who read English as a second language, are tired, or read on a phone.

Markdown is reduced to its words first (link targets, `#`, `**`, list marks and `{{ fields }}` are not
words a member reads), and each list item and heading counts as a sentence of its own."""

from __future__ import annotations

import re
from dataclasses import dataclass

import textstat  # type: ignore[import-untyped]  # 0.7.8 ships no type information

TARGET_READING_AGE = 9
MIN_WORDS = 20  # fewer words than this give no meaningful figure
GRADE_TO_AGE = 5

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_FIELD = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_LINE_MARK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[A-Z0-9“\"'(])")


@dataclass(frozen=True)
class ReadingHint:
    """The reading age (None when the text is too short to judge) and the longest sentences, longest first."""

    reading_age: int | None
    longest: tuple[str, ...]
    words: int

    @property
    def above_target(self) -> bool:
        return self.reading_age is not None and self.reading_age > TARGET_READING_AGE


def plain_sentences(markdown: str) -> list[str]:
    """The sentences a member reads, in order: headings and list items end a sentence."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", markdown.replace("\r\n", "\n")):
        lines: list[str] = []
        for line in block.split("\n"):
            starts_item = bool(_LINE_MARK.match(line))
            text = _clean(line)
            if not text:
                continue
            if starts_item and lines:
                sentences.extend(_split(" ".join(lines)))
                lines = []
            lines.append(text)
            if line.lstrip().startswith("#"):  # a heading stands alone
                sentences.extend(_split(" ".join(lines)))
                lines = []
        if lines:
            sentences.extend(_split(" ".join(lines)))
    return [s for s in sentences if s]


def reading_hint(markdown: str, *, longest: int = 2) -> ReadingHint:
    sentences = plain_sentences(markdown)
    words = sum(len(s.split()) for s in sentences)
    ranked = sorted(sentences, key=lambda s: len(s.split()), reverse=True)[:longest]
    if words < MIN_WORDS:
        return ReadingHint(None, tuple(ranked), words)
    # One sentence per line, each ending in a full stop, so textstat counts them as the member reads them.
    text = " ".join(s if s[-1] in ".!?" else s + "." for s in sentences)
    grade = textstat.flesch_kincaid_grade(text)
    return ReadingHint(max(5, round(grade) + GRADE_TO_AGE), tuple(ranked), words)


def _clean(line: str) -> str:
    line = _LINE_MARK.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _URL.sub("", line)
    line = _FIELD.sub(lambda m: "Sam" if m.group(1) == "name" else "your groups", line)
    line = _EMPHASIS.sub("", line)
    return " ".join(line.split())


def _split(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]
