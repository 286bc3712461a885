"""Build dist/<name>-<version>.difypkg by the daemon's rules and print its identifier.

Rules followed (dify-plugin-daemon's packager and decoder): a plain zip of the plugin
root with forward-slash paths, .difyignore honoured (gitignore syntax, .gitignore as
fallback, .git always out), at most 50 MB uncompressed; the identifier is
author/name:version@checksum, the checksum being sha256 over, for each file in sorted
path order, sha256(path) followed by sha256(content).
"""

import argparse
import hashlib
import os
import sys
import zipfile
from pathlib import Path

import pathspec
import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 50 * 1024 * 1024
# Fixed timestamps and modes make the archive byte-for-byte reproducible.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    for name in (".difyignore", ".gitignore"):
        if (root / name).is_file():
            lines = (root / name).read_text(encoding="utf-8").splitlines()
            break
    else:
        lines = []
    return pathspec.GitIgnoreSpec.from_lines([".git/", *lines])


def plugin_files(root: Path) -> dict[str, bytes]:
    """Relative posix path -> content, for every file the package holds."""
    spec = ignore_spec(root)
    found = {}
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = sorted(d for d in dirs if not spec.match_file(prefix + d + "/"))
        for name in names:
            rel = prefix + name
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and not spec.match_file(rel):
                found[rel] = path.read_bytes()
    return dict(sorted(found.items()))


def checksum(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(hashlib.sha256(rel.encode()).digest())
        digest.update(hashlib.sha256(files[rel]).digest())
    return digest.hexdigest()


def build(root: Path, out_dir: Path) -> tuple[Path, str]:
    manifest = yaml.safe_load((root / "manifest.yaml").read_text(encoding="utf-8"))
    files = plugin_files(root)
    size = sum(len(data) for data in files.values())
    if size > MAX_BYTES:
        raise SystemExit(f"plugin is {size} bytes uncompressed, over Dify's {MAX_BYTES} byte limit")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['name']}-{manifest['version']}.difypkg"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, data in files.items():
            info = zipfile.ZipInfo(rel, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    identifier = f"{manifest['author']}/{manifest['name']}:{manifest['version']}@{checksum(files)}"
    return target, identifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    target, identifier = build(ROOT, args.out)
    sys.stdout.write(f"{target}\nplugin_unique_identifier: {identifier}\n")


if __name__ == "__main__":
    main()
