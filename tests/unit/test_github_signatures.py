"""GitHub's secret-scanning signatures, without Redis: the keys document, reloads, verify.

The endpoint's behaviour is tests/integration/scanning/test_secret_scanning.py; these pin each
refusal of ``keyledger.authn.github`` on its own (found by ``make mutate``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyledger.authn.github import (
    GitHubSignatures,
    KeysFileError,
    parse_keys,
)

MIB = 1024 * 1024  # the documented limit of the keys file
BODY = b'[{"token":"klsk_x","type":"keyledger_secret_key","url":"https://github.com"}]'


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def document(*entries: tuple[str, str]) -> str:
    return json.dumps(
        {
            "public_keys": [
                {"key_identifier": name, "key": key, "is_current": True} for name, key in entries
            ]
        }
    )


def sign(key: ec.EllipticCurvePrivateKey, body: bytes = BODY) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture(scope="module")
def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def keys_file(tmp_path: Path, signer: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(document(("k1", pem(signer))))
    return path


def test_every_listed_p256_key_is_read_by_its_identifier(
    signer: ec.EllipticCurvePrivateKey,
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    keys = parse_keys(document(("k1", pem(signer)), ("k2", pem(other))))
    assert sorted(keys) == ["k1", "k2"]
    assert keys["k2"].public_numbers() == other.public_key().public_numbers()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected"),
        ('{"public_keys": []}', "expected"),
        ('{"public_keys": {}}', "expected"),
        ('{"keys": [{}]}', "expected"),
        ('{"public_keys": ["k"]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key": "x"}]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key_identifier": "", "key": "x"}]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key_identifier": 1, "key": "x"}]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key_identifier": "k"}]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key_identifier": "k", "key": 7}]}', "public_keys[0] needs"),
        ('{"public_keys": [{"key_identifier": "k", "key": "x"}]}', "not a PEM public key"),
    ],
)
def test_an_unusable_document_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(KeysFileError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_keys(text)


def test_the_failing_entry_is_named_by_its_index(signer: ec.EllipticCurvePrivateKey) -> None:
    text = json.dumps(
        {"public_keys": [{"key_identifier": "k1", "key": pem(signer)}, {"key_identifier": "k2"}]}
    )
    with pytest.raises(KeysFileError, match=r"public_keys\[1\] needs"):
        parse_keys(text)


def test_a_key_that_is_not_ecdsa_p256_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeysFileError, match="not an ECDSA P-256 key"):
        parse_keys(document(("k", pem(p384))))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeysFileError, match="not an ECDSA P-256 key"):
        parse_keys(document(("k", pem(rsa_key))))


def test_a_file_over_a_mebibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(" " * (MIB + 1))
    with pytest.raises(KeysFileError, match="larger than 1 MiB"):
        GitHubSignatures(str(path))


def test_a_file_of_exactly_a_mebibyte_is_read(
    tmp_path: Path, signer: ec.EllipticCurvePrivateKey
) -> None:
    text = document(("k1", pem(signer)))
    path = tmp_path / "keys.json"
    path.write_text(text + " " * (MIB - len(text)))
    assert os.path.getsize(path) == MIB
    assert list(GitHubSignatures(str(path)).keys()) == ["k1"]


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"])
def test_a_missing_or_undecodable_file_is_refused(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeysFileError, match="cannot read it"):
        GitHubSignatures(str(path))


def test_a_signature_by_a_listed_key_over_the_body_verifies(
    keys_file: Path, signer: ec.EllipticCurvePrivateKey
) -> None:
    assert GitHubSignatures(str(keys_file)).verify("k1", sign(signer), BODY) is None


@pytest.mark.parametrize(
    ("identifier", "signature", "says"),
    [
        (None, "sig", "are required"),
        ("", "sig", "are required"),
        ("k1", None, "are required"),
        ("k1", "", "are required"),
        ("k9", "good", "unknown Github-Public-Key-Identifier"),
        ("k1", "!!not base64!!", "does not verify"),
        ("k1", base64.b64encode(b"not der").decode(), "does not verify"),
        ("k1", "other body", "does not verify"),
    ],
)
def test_every_bad_signature_is_refused_saying_why(
    keys_file: Path,
    signer: ec.EllipticCurvePrivateKey,
    identifier: str | None,
    signature: str | None,
    says: str,
) -> None:
    if signature == "good":
        signature = sign(signer)
    elif signature == "other body":
        signature = sign(signer, BODY + b" ")
    refusal = GitHubSignatures(str(keys_file)).verify(identifier, signature, BODY)
    assert refusal is not None and says in refusal


def test_a_changed_file_is_read_again(keys_file: Path, signer: ec.EllipticCurvePrivateKey) -> None:
    signatures = GitHubSignatures(str(keys_file))
    newer = ec.generate_private_key(ec.SECP256R1())
    keys_file.write_text(document(("k1", pem(signer)), ("k2", pem(newer))))
    assert signatures.verify("k2", sign(newer), BODY) is None


def test_a_broken_changed_file_keeps_the_last_good_keys(
    keys_file: Path, signer: ec.EllipticCurvePrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    signatures = GitHubSignatures(str(keys_file))
    keys_file.write_text("{half written")
    assert signatures.verify("k1", sign(signer), BODY) is None
    assert "keeping the last good keys" in caplog.text


def test_a_removed_file_keeps_the_last_good_keys(
    keys_file: Path, signer: ec.EllipticCurvePrivateKey
) -> None:
    signatures = GitHubSignatures(str(keys_file))
    keys_file.unlink()
    assert signatures.verify("k1", sign(signer), BODY) is None


def test_an_unchanged_file_is_not_read_again(keys_file: Path) -> None:
    signatures = GitHubSignatures(str(keys_file))
    first = signatures.keys()
    assert signatures.keys() is first


def test_a_signature_with_characters_outside_base64_is_refused(
    keys_file: Path, signer: ec.EllipticCurvePrivateKey
) -> None:
    # Lenient decoding would drop the junk and verify: only the exact encoding counts.
    good = sign(signer)
    refusal = GitHubSignatures(str(keys_file)).verify("k1", good[:8] + "!" + good[8:], BODY)
    assert refusal is not None and "does not verify" in refusal


def test_a_file_replaced_by_an_older_one_is_read_again(
    keys_file: Path, signer: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    signatures = GitHubSignatures(str(keys_file))
    newer = ec.generate_private_key(ec.SECP256R1())
    restored = tmp_path / "restored.json"
    restored.write_text(document(("k2", pem(newer))))
    before = os.stat(keys_file).st_mtime_ns - 3_600 * 10**9
    os.utime(restored, ns=(before, before))  # an older file (a restored backup, cp -p)
    os.replace(restored, keys_file)
    assert signatures.verify("k2", sign(newer), BODY) is None
    assert signatures.verify("k1", sign(signer), BODY) is not None


def test_a_key_set_cannot_be_changed_once_read(keys_file: Path) -> None:
    key_set = GitHubSignatures(str(keys_file))._set
    with pytest.raises(dataclasses.FrozenInstanceError):
        key_set.keys = {}  # type: ignore[misc]
