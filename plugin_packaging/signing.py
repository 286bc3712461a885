"""Publisher keys and package signatures in dify-plugin-daemon's scheme, so Dify can verify our .difypkg.

The scheme (pkg/plugin_packager/signer/withkey/sign_with_key.go, decoder/verifier.go, utils/encryption):
- the archive's entries, in zip order, end with `.verification.dify.json` ({"authorized_category": ...});
- the signed data is sha256(content) of every entry, in that order, then the decimal Unix time;
- the signature is RSA PKCS#1 v1.5 over SHA-256 of that data;
- the zip comment is {"signature": <standard base64>, "time": <int>};
- keys are PEM, PKCS#1 ("RSA PRIVATE KEY" / "RSA PUBLIC KEY"), as `dify signature generate` writes them.

`python -m plugin_packaging.signing keys --out keys` writes a key pair (`make keys`).
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

VERIFICATION_FILE = ".verification.dify.json"
# The daemon knows langgenius, partner and community; only langgenius carries a meaning (official plugins).
AUTHORIZED_CATEGORY = "community"
KEY_BITS = 4096  # what `dify signature generate` uses


def verification_entry(category: str = AUTHORIZED_CATEGORY) -> tuple[str, bytes]:
    """The daemon's Verification struct as Go's json.Marshal writes it."""
    return VERIFICATION_FILE, json.dumps({"authorized_category": category}, separators=(",", ":")).encode()


def signed_data(entries: list[tuple[str, bytes]], when: int) -> bytes:
    return b"".join(hashlib.sha256(data).digest() for _, data in entries) + str(when).encode()


def signature_comment(entries: list[tuple[str, bytes]], key: rsa.RSAPrivateKey, when: int) -> bytes:
    """The zip comment: {"signature", "time"}, keys in Go's map order (sorted), no spaces."""
    signature = key.sign(signed_data(entries, when), padding.PKCS1v15(), hashes.SHA256())
    comment = {"signature": base64.b64encode(signature).decode(), "time": when}
    return json.dumps(comment, separators=(",", ":")).encode()


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Only PKCS#1 PEM, the one form the daemon's tools read and write."""
    data = Path(path).read_bytes()
    if not data.lstrip().startswith(b"-----BEGIN RSA PRIVATE KEY-----"):
        raise SystemExit(f"{path}: not a PKCS#1 PEM private key ('-----BEGIN RSA PRIVATE KEY-----'); "
                         "make one with `make keys`")
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"{path}: not an RSA key")
    return key


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)


def signing_time() -> int:
    """SOURCE_DATE_EPOCH, when set, makes a signed build byte-for-byte reproducible."""
    return int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())


def generate_keys(out_dir: Path, name: str, bits: int = KEY_BITS) -> tuple[Path, Path]:
    private_path, public_path = out_dir / f"{name}.private.pem", out_dir / f"{name}.public.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise SystemExit(f"{path} exists; move it away first (a new key invalidates the old signatures)")
    out_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public_path.write_bytes(public_pem(key))
    return private_path, public_path


def install_instructions(public_key: Path) -> str:
    """What an operator does so that Dify accepts packages signed with this key."""
    name = public_key.name
    return "\n".join([
        "To install it in self-hosted Dify with signature verification on:",
        f"  mkdir -p docker/volumes/plugin_daemon/public_keys && cp {public_key} docker/volumes/plugin_daemon/public_keys/",
        "  # docker/docker-compose.override.yaml (docker/volumes/plugin_daemon is /app/storage in the container):",
        "  services:",
        "    plugin_daemon:",
        "      environment:",
        "        FORCE_VERIFYING_SIGNATURE: \"true\"",
        "        THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED: \"true\"",
        f"        THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS: /app/storage/public_keys/{name}",
        "  cd docker && docker compose up -d   # then Plugins -> Install plugin -> Local package file",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make a PKCS#1 key pair for signing the plugin package.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="write <out>/<name>.private.pem and <name>.public.pem")
    keys.add_argument("--out", type=Path, default=Path("keys"))
    keys.add_argument("--name", default="qwen_image")
    keys.add_argument("--bits", type=int, default=KEY_BITS)
    args = parser.parse_args(argv)
    private_path, public_path = generate_keys(args.out, args.name, args.bits)
    sys.stdout.write(f"private key: {private_path} (keep it secret; never commit or package it)\n"
                     f"public key:  {public_path}\n"
                     f"sign with:   PLUGIN_SIGNING_KEY={private_path} make package\n")


if __name__ == "__main__":
    main()
