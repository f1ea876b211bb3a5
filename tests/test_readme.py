"""The README fits the first minutes and every link in it, and in the pages it links to, leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MAX_LINES = 150


def _visible(text: str) -> str:
    """Markdown without HTML comments and fenced code (neither renders as a link)."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", _visible(text), flags=re.M)}


def _broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(_visible(text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ... are not checked offline
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text(encoding="utf-8")):
            broken.append(f"{page.name}: {target} (no heading #{anchor})")
    return broken


def _linked_pages() -> list[Path]:
    pages = []
    for target in LINK.findall(_visible(README.read_text(encoding="utf-8"))):
        path = target.partition("#")[0]
        if path.endswith(".md") and not re.match(r"[a-z]+:", path) and (ROOT / path).is_file():
            pages.append(ROOT / path)
    return sorted(set(pages))


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_readme_link_resolves():
    assert not _broken_links(README)


def test_every_link_of_the_pages_the_readme_links_resolves():
    pages = _linked_pages()
    assert ROOT / "docs" / "method.md" in pages and ROOT / "docs" / "reid_ablation.md" in pages
    broken = [link for page in pages for link in _broken_links(page)]
    assert not broken, "\n".join(broken)


def test_a_broken_link_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](page.md#title) [gone](missing.md) [bad anchor](#nowhere) "
                    "<!-- [hidden](later.md) -->\n", encoding="utf-8")
    assert [b.split(" (")[0] for b in _broken_links(page)] == ["page.md: missing.md", "page.md: #nowhere"]


def test_the_readme_test_command_is_what_ci_runs():
    readme = README.read_text(encoding="utf-8")
    command = re.search(r"\*\*Run the tests\*\*.*?```bash\n(.+?)\n```", readme, flags=re.S).group(1)
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_status_box_says_where_the_method_works():
    status = README.read_text(encoding="utf-8").split("## What works where", 1)[1].split("\n## ", 1)[0]
    for words in ("the method works here", "makes faces worse", "no unmasking encoder exists for real faces",
                  "teaching embedder", "dlib"):
        assert words in status, words
