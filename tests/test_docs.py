"""The documentation's relative links lead somewhere: every [text](file#anchor) in a tracked Markdown file names a
file that exists and, for a Markdown file, a heading it has (GitHub's anchors)."""

import functools
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, hyphens and spaces kept),
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache          # a file is read once, however many links point into it
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    for line in re.sub(r"```.*?```", "", path.read_text(), flags=re.S).splitlines():
        if m := re.match(r"#{1,6} (.*)", line):
            a = github_anchor(m.group(1))
            seen[a] = seen.get(a, 0) + 1
    return frozenset(a if k == 0 else f"{a}-{k}" for a, n in seen.items() for k in range(n))   # repeats: -1, -2


def broken_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)      # code blocks hold commands, not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):                             # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def test_github_anchor_follows_githubs_rule():
    assert github_anchor("Session 25: the student against the full-step model, paired (CPU)") == \
        "session-25-the-student-against-the-full-step-model-paired-cpu"
    assert github_anchor("`straightline generate`: the CLI") == "straightline-generate-the-cli"


def test_every_relative_link_in_the_docs_resolves(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("# Here\n[a](#here) [b](#there) [c](nowhere.md)\n")
    assert broken_links(bad) == ["#there (no such heading)", "nowhere.md (no such file)"]   # the check can fail

    files = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert "docs/benchmarks.md" in files
    broken = {f: b for f in files if (b := broken_links(ROOT / f))}
    assert not broken, broken
