"""Build dist/<name>-<version>.difypkg by the daemon's rules, sign it if asked, and print its identifier.

Rules followed (dify-plugin-daemon's packager and decoder): a plain zip of the plugin root with
forward-slash paths, files sorted, .difyignore applied as the daemon applies it (see difyignore.py:
a negation never brings a path back), at most 50 MB uncompressed. The identifier is
author/name:version@checksum, the checksum being sha256 over, for each entry in sorted path order,
sha256(path) followed by sha256(content). With PLUGIN_SIGNING_KEY set to a PKCS#1 private key, the
package is signed as `dify signature sign` does (see signing.py) and written as <name>-<version>.signed.difypkg;
its `.verification.dify.json` entry is part of the checksum, as it is for the daemon.
Two deliberate differences from the daemon's walker: `.git/` is always left out, and symlinks are skipped.
"""

import argparse
import hashlib
import os
import sys
import zipfile
from pathlib import Path

import yaml

from plugin_packaging import difyignore

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 50 * 1024 * 1024
# Fixed timestamps and modes make the archive byte-for-byte reproducible.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ALWAYS_OUT = [difyignore.parse(".git/")]


def plugin_files(root: Path) -> dict[str, bytes]:
    """Relative posix path -> content, for every file the daemon would package, in sorted order."""
    patterns = ALWAYS_OUT + difyignore.read_patterns(root)
    found = {}
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root)
        parts = [] if rel_dir == Path(".") else list(rel_dir.parts)
        dirs[:] = sorted(d for d in dirs if not difyignore.excluded(patterns, parts + [d], True))
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and not difyignore.excluded(patterns, parts + [name], False):
                found["/".join(parts + [name])] = path.read_bytes()
    return dict(sorted(found.items()))


def checksum(entries: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(entries):
        digest.update(hashlib.sha256(rel.encode()).digest())
        digest.update(hashlib.sha256(entries[rel]).digest())
    return digest.hexdigest()


def write_zip(target: Path, entries: list[tuple[str, bytes]], comment: bytes = b"") -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel, data in entries:
            info = zipfile.ZipInfo(rel, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
        archive.comment = comment


def build(root: Path, out_dir: Path, signing_key: Path | None = None) -> tuple[Path, str]:
    manifest = yaml.safe_load((root / "manifest.yaml").read_text(encoding="utf-8"))
    files = plugin_files(root)
    size = sum(len(data) for data in files.values())
    if size > MAX_BYTES:
        raise SystemExit(f"plugin is {size} bytes uncompressed, over Dify's {MAX_BYTES} byte limit")
    entries, comment, suffix = list(files.items()), b"", ""
    if signing_key is not None:
        from plugin_packaging import signing  # needs `cryptography`, which an unsigned build does not

        entries.append(signing.verification_entry())
        comment = signing.signature_comment(entries, signing.load_private_key(signing_key), signing.signing_time())
        suffix = ".signed"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['name']}-{manifest['version']}{suffix}.difypkg"
    write_zip(target, entries, comment)
    identifier = f"{manifest['author']}/{manifest['name']}:{manifest['version']}@{checksum(dict(entries))}"
    return target, identifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--sign", type=Path, default=os.environ.get("PLUGIN_SIGNING_KEY") or None,
                        help="PKCS#1 PEM private key to sign with (default: $PLUGIN_SIGNING_KEY)")
    args = parser.parse_args(argv)
    for line in difyignore.ineffective_negations(difyignore.read_patterns(ROOT)):
        sys.stderr.write(f"warning: .difyignore '{line}' has no effect: the plugin daemon never re-includes\n")
    target, identifier = build(ROOT, args.out, args.sign)
    sys.stdout.write(f"{target}\nplugin_unique_identifier: {identifier}\n")
    if args.sign is None:
        sys.stdout.write("unsigned: Dify installs it only with FORCE_VERIFYING_SIGNATURE=false "
                         "(sign it with PLUGIN_SIGNING_KEY=keys/qwen_image.private.pem make package)\n")
        return
    from plugin_packaging import signing

    stem = Path(args.sign).name.removesuffix(".pem").removesuffix(".private")
    public_key = args.out / f"{stem}.public.pem"
    public_key.write_bytes(signing.public_pem(signing.load_private_key(args.sign)))
    sys.stdout.write(f"signed; public key: {public_key}\n{signing.install_instructions(public_key)}\n")


if __name__ == "__main__":
    main()
