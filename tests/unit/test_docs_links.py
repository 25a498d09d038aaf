"""Every relative link in README.md and docs/*.md leads somewhere: the file exists and,
for a ``#anchor`` into a markdown file, a heading there has that anchor (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.layout import ROOT

#: ``[text](target)`` and ``![alt](target)``; the text may hold code spans.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a ``# comment`` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but ``-`` and ``_`` dropped,
    spaces turned into ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text()):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The targets of the links outside code; a link whose text is a code span counts."""
    targets = []
    for line in prose_lines(path.read_text()):
        # a code span holding "](" shows markdown as an example: it links nowhere
        line = CODE_SPAN.sub(lambda m: "" if "](" in m.group(0) else m.group(0), line)
        targets += [match.group(1) for match in LINK.finditer(line)]
    return targets


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or anchor does not exist, and why."""
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_documents_link_to_each_other() -> None:
    """The README's audience sections point at the three guides (the check above would
    pass on a README that lost its links)."""
    readme = set(links(ROOT / "README.md"))
    for guide in ("docs/integrators.md", "docs/operators.md", "docs/auditors.md"):
        assert guide in readme, guide


def test_github_slugs() -> None:
    assert slug("A key's life") == "a-keys-life"
    assert slug("Leaked keys: GitHub secret scanning") == "leaked-keys-github-secret-scanning"
    assert (
        slug("Acknowledged means replicated: `KEYLEDGER_MIN_REPLICAS`")
        == "acknowledged-means-replicated-keyledger_min_replicas"
    )
    assert slug("Auditing: replay, state at a time, verification") == (
        "auditing-replay-state-at-a-time-verification"
    )


def test_a_broken_file_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## Same\n\n## Same\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Here\n\n```sh\n# not a heading\n```\n\n"
        "[ok](other.md) [ok](other.md#same-1) [ok](#here) [ok](https://example.com/x)\n"
        "![img](missing.png) [bad](other.md#same-2) [bad](#not-a-heading) [bad](gone.md)\n"
    )
    found = broken_links(doc)
    assert len(found) == 4, found
    assert [f.split(":", 1)[0] for f in found] == [
        "missing.png",
        "other.md#same-2",
        "#not-a-heading",
        "gone.md",
    ]
