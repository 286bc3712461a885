"""The builder leaves out what dify-plugin-daemon's walker leaves out, negations included.

The daemon (decoder/fs.go) drops a path on the first pattern that answers Exclude; `!pattern` answers
Include, which it never acts on. git would re-include `keep.txt` below; the daemon does not, so neither do we.
"""

import hashlib
import zipfile

from plugin_packaging import build as builder
from plugin_packaging import difyignore

IGNORE = """\
# comments and blank lines are skipped

.*
!.difyignore
*.txt
!keep.txt
notes/
!notes/readme.md
/anchored.md
build/**
"""
FILES = {
    ".difyignore": IGNORE, ".env": "SECRET=1", ".cache/x.py": "x",
    "manifest.yaml": "author: a\nname: p\nversion: 0.0.1\n", "main.py": "print()",
    "keep.txt": "kept by git, not by the daemon", "a.txt": "a", "deep/b.txt": "b",
    "notes/readme.md": "n", "sub/notes/x.py": "x",        # `notes/` has no slash inside: any depth
    "anchored.md": "root only", "sub/anchored.md": "stays",  # a leading `/` anchors to the root
    "build/out.py": "o", "src/build/y.py": "stays",          # `build/**` is anchored too (it has a slash)
    "src/mod.py": "m", "src/日本.py": "unicode names stay",
}
KEPT = ["main.py", "manifest.yaml", "src/build/y.py", "src/mod.py", "src/日本.py", "sub/anchored.md"]


def test_the_builder_follows_the_daemons_first_exclude_rule(tmp_path):
    root = tmp_path / "plugin"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    target, identifier = builder.build(root, tmp_path / "dist")
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == KEPT
    # The printed identifier is the daemon's checksum of exactly those files, computed from the disk.
    digest = hashlib.sha256()
    for rel in sorted(KEPT):
        digest.update(hashlib.sha256(rel.encode()).digest())
        digest.update(hashlib.sha256((root / rel).read_bytes()).digest())
    assert identifier == f"a/p:0.0.1@{digest.hexdigest()}"


def test_gitignore_is_the_fallback_and_negations_are_reported(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\n!important.log\n")
    patterns = difyignore.read_patterns(tmp_path)
    assert difyignore.excluded(patterns, ["important.log"], False)
    assert not difyignore.excluded(patterns, ["app.py"], False)
    assert difyignore.ineffective_negations(patterns) == ["!important.log"]


def test_go_git_pattern_details():
    def out(pattern, path, is_dir=False):
        return difyignore.excluded([difyignore.parse(pattern)], path.split("/"), is_dir)

    assert out("docs/", "docs", True) and not out("docs/", "docs", False)  # dir-only
    assert out("*.py[co]", "a/b.pyc") and not out("*.py[co]", "b.py")
    assert out("[!a]*.md", "b.md") and not out("[!a]*.md", "a.md")
    assert out("a/**/z", "a/b/c/z") and out("**/cache", "x/y/cache", True)
    assert out("\\#literal", "#literal")
