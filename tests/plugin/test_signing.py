"""The signed .difypkg, checked by a verifier written here from the daemon's scheme, not from signing.py.

Scheme (dify-plugin-daemon decoder/verifier.go): sha256 of every zip entry's content in zip order, then
the decimal Unix time from the zip comment {"signature": base64, "time": int}; RSA PKCS#1 v1.5 over SHA-256;
keys are PKCS#1 PEM.
"""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.plugin.harness import ROOT


def daemon_verifies(package: bytes, public_key_pem: bytes) -> bool:
    """VerifyPluginWithPublicKeys, in Python."""
    assert public_key_pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")  # LoadPublicKey wants PKCS#1
    key = serialization.load_pem_public_key(public_key_pem)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        data = b"".join(hashlib.sha256(archive.read(info)).digest() for info in archive.infolist())
        comment = json.loads(archive.comment)
    data += str(comment["time"]).encode()
    try:
        key.verify(base64.b64decode(comment["signature"]), data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def daemon_checksum(package: bytes) -> str:
    digest = hashlib.sha256()
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        for name in sorted(archive.namelist()):
            digest.update(hashlib.sha256(name.encode()).digest() + hashlib.sha256(archive.read(name)).digest())
    return digest.hexdigest()


def rewritten(package: bytes, change) -> bytes:
    """The same archive, comment kept, with change(name, data) applied to every entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, change(info.filename, source.read(info)))
        target.comment = source.comment
    return out.getvalue()


def run(args, **env) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if k != "PLUGIN_SIGNING_KEY"}, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    run(["-m", "plugin_packaging.signing", "keys", "--out", str(folder), "--name", "publisher", "--bits", "2048"])
    other = tmp_path_factory.mktemp("other")
    run(["-m", "plugin_packaging.signing", "keys", "--out", str(other), "--name", "stranger", "--bits", "2048"])
    return folder / "publisher.private.pem", folder / "publisher.public.pem", other / "stranger.public.pem"


@pytest.fixture(scope="module")
def signed(keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    stdout = run(["-m", "plugin_packaging.build", "--out", str(out)], PLUGIN_SIGNING_KEY=str(keys[0]),
                 SOURCE_DATE_EPOCH="1764460800")
    path = out / "qwen_image-0.1.0.signed.difypkg"
    return path.read_bytes(), stdout, out


def test_keys_are_pkcs1_pem(keys):
    private, public, _ = keys
    assert private.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert public.read_bytes().startswith(b"-----BEGIN RSA PUBLIC KEY-----\n")
    assert private.stat().st_mode & 0o077 == 0  # the private key is readable by its owner only
    # Go's pem.Decode + LoadPrivateKey refuse anything after the block.
    assert private.read_bytes().rstrip(b"\n").endswith(b"-----END RSA PRIVATE KEY-----")


def test_the_daemons_verifier_accepts_the_signed_package(signed, keys):
    package, stdout, out = signed
    assert daemon_verifies(package, keys[1].read_bytes())
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        names = archive.namelist()
        assert names[-1] == ".verification.dify.json" and names[:-1] == sorted(names[:-1])
        assert json.loads(archive.read(names[-1])) == {"authorized_category": "community"}
        assert json.loads(archive.comment)["time"] == 1764460800
        assert not [n for n in names if n.endswith(".pem")]
    # The identifier is the daemon's checksum of the signed archive, verification entry included.
    identifier = re.search(r"plugin_unique_identifier: (\S+)", stdout).group(1)
    assert identifier == f"qwen_image_community/qwen_image:0.1.0@{daemon_checksum(package)}"
    # The operator is told how to trust the key, and gets the public half next to the package.
    assert "THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED" in stdout
    assert "THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS: /app/storage/public_keys/publisher.public.pem" in stdout
    assert (out / "publisher.public.pem").read_bytes() == keys[1].read_bytes()


def test_a_tampered_package_fails_verification(signed, keys):
    package, _, _ = signed
    public = keys[1].read_bytes()
    edited = rewritten(package, lambda name, data: data + b"\n# injected" if name == "tools/invoke.py" else data)
    assert not daemon_verifies(edited, public)
    unchanged = rewritten(package, lambda name, data: data)
    assert daemon_verifies(unchanged, public)  # the rewrite alone keeps it valid: the edit is what fails
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        comment = json.loads(archive.comment)
    retimed = io.BytesIO(package)
    with zipfile.ZipFile(retimed, "a") as archive:
        archive.comment = json.dumps({**comment, "time": comment["time"] + 1}).encode()
    assert not daemon_verifies(retimed.getvalue(), public)  # the time is signed too


def test_another_publishers_key_does_not_verify(signed, keys):
    assert not daemon_verifies(signed[0], keys[2].read_bytes())


def test_signing_is_reproducible_with_a_fixed_time(signed, keys, tmp_path):
    run(["-m", "plugin_packaging.build", "--out", str(tmp_path)], PLUGIN_SIGNING_KEY=str(keys[0]),
        SOURCE_DATE_EPOCH="1764460800")
    assert (tmp_path / "qwen_image-0.1.0.signed.difypkg").read_bytes() == signed[0]
