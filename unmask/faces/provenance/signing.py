"""Who signs the C2PA manifests: the operator's key and certificate chain, or a test chain made on this machine.

An operator (a server, a Space) gives its own key and chain through the environment; on a Hugging Face Space
these are secrets, which reach the app as environment variables:

* :data:`KEY_ENV` (``UNMASK_C2PA_KEY``): the private key, PEM, unencrypted (PKCS#8 or the traditional
  EC/RSA form); or :data:`KEY_FILE_ENV` (``UNMASK_C2PA_KEY_FILE``): a file holding it.
* :data:`CERTS_ENV` (``UNMASK_C2PA_CERTS``): the certificate chain, PEM, the signing certificate first, then the
  intermediates (the root may be left out); or :data:`CERTS_FILE_ENV` (``UNMASK_C2PA_CERTS_FILE``).
* :data:`TSA_ENV` (``UNMASK_C2PA_TSA_URL``, optional): an RFC 3161 time-stamp authority, asked at every signature
  (so it needs the network); without one a manifest's signature is valid only while its certificate is.

The signing algorithm follows the key: ES256/384/512 for EC P-256/384/521 keys, Ed25519, PS256 for RSA.

Without an operator key, unmask signs with a **test chain** (a CA and a signing certificate, ES256) generated on
first use and kept outside the repository in :func:`test_chain_dir` (``UNMASK_C2PA_DIR``, default
``~/.cache/unmask/c2pa``), in one file readable by its owner only. Its manifests verify (the pixels are bound
to the signed claim: changing them breaks it), but no reader trusts that CA, so every reader reports the
signer as untrusted (``signingCredential.untrusted``): it says what was done, not who vouches for it.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from unmask.errors import ConfigError, DependencyError

KEY_ENV = "UNMASK_C2PA_KEY"
KEY_FILE_ENV = "UNMASK_C2PA_KEY_FILE"
CERTS_ENV = "UNMASK_C2PA_CERTS"
CERTS_FILE_ENV = "UNMASK_C2PA_CERTS_FILE"
TSA_ENV = "UNMASK_C2PA_TSA_URL"
DIR_ENV = "UNMASK_C2PA_DIR"
_ENV_NAMES = (KEY_ENV, KEY_FILE_ENV, CERTS_ENV, CERTS_FILE_ENV, TSA_ENV, DIR_ENV)
#: The file of the test chain: its private key, then the signing certificate, then its CA.
TEST_CHAIN_FILE = "test-signer.pem"
#: The test chain's names, as readers show them.
TEST_ORGANISATION = "untrusted test certificate made by unmask on this machine"
TEST_SIGNER_NAME = "unmask test signer"
TEST_CA_NAME = "unmask test CA"
#: How long a test chain is valid; it is made again when less than a day is left.
TEST_VALIDITY = datetime.timedelta(days=5 * 365)
#: The pinned c2pa-python (requirements.txt), named in the error when it is missing.
C2PA_REQUIREMENT = "c2pa-python==0.38.1"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\s*", re.S)


@dataclasses.dataclass(frozen=True)
class SigningIdentity:
    """A private key and its certificate chain, as c2pa signs with them.

    Attributes:
        key_pem: the private key, PEM.
        certs_pem: the chain, PEM, signing certificate first.
        alg: the C2PA signing algorithm (``"es256"``, ``"es384"``, ``"es512"``, ``"ps256"``, ``"ed25519"``).
        origin: ``"operator"`` (from the environment) or ``"test"`` (this machine's test chain).
        subject: the signing certificate's subject (what readers show as the signer).
        tsa_url: the time-stamp authority, or ``None``.
    """

    key_pem: bytes = dataclasses.field(repr=False)
    certs_pem: bytes = dataclasses.field(repr=False)
    alg: str
    origin: str
    subject: str
    tsa_url: str | None = None

    @property
    def is_test(self) -> bool:
        """Signed with this machine's test chain: readers report the signer as untrusted."""
        return self.origin == "test"

    def describe(self) -> str:
        """One sentence for a page or a log: who signs, and whether readers will trust it."""
        if self.is_test:
            return (f"signed with a test certificate generated on this machine ({self.subject}); no reader trusts "
                    f"it, so they report the signer as untrusted (signingCredential.untrusted). Set {KEY_ENV} and "
                    f"{CERTS_ENV} to sign with your own key.")
        return f"signed by {self.subject} ({self.alg.upper()}, the operator's key)."


def signing_identity() -> SigningIdentity:
    """The operator's identity when the environment gives one, else this machine's test chain (made on first use).

    Raises:
        ConfigError: the operator's key or chain is incomplete, unreadable, expired, or do not belong together.
    """
    return _identity(tuple(os.environ.get(name) or None for name in _ENV_NAMES))


@functools.lru_cache(maxsize=8)
def _identity(env: tuple[str | None, ...]) -> SigningIdentity:
    key, key_file, certs, certs_file, tsa_url, folder = env
    key_pem = _text_or_file(key, KEY_ENV, key_file, KEY_FILE_ENV)
    certs_pem = _text_or_file(certs, CERTS_ENV, certs_file, CERTS_FILE_ENV)
    if key_pem is None and certs_pem is None:
        return load_test_identity(Path(folder) if folder else test_chain_dir())
    if key_pem is None or certs_pem is None:
        given, missing = (KEY_ENV, CERTS_ENV) if certs_pem is None else (CERTS_ENV, KEY_ENV)
        raise ConfigError(f"{given} (or its _FILE form) is set but {missing} is not: an operator signs with both a "
                          f"private key and its certificate chain. Set both, or neither to sign with this "
                          "machine's test chain.")
    return operator_identity(key_pem, certs_pem, tsa_url=tsa_url)


def _text_or_file(text: str | None, text_env: str, path: str | None, path_env: str) -> bytes | None:
    if text and path:
        raise ConfigError(f"both {text_env} and {path_env} are set; set one of them.")
    if path:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path_env}={path!r}: {exc.strerror or exc}.") from exc
    return text.replace("\\n", "\n").encode() if text else None  # secrets pasted on one line keep "\n"


def operator_identity(key_pem: bytes, certs_pem: bytes, *, tsa_url: str | None = None,
                      origin: str = "operator") -> SigningIdentity:
    """Check an operator's key and chain (readable, current, the key is the signing certificate's) and name them.

    Raises:
        ConfigError: with what is wrong and what to set.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the C2PA signing key ({KEY_ENV}) is not an unencrypted PEM private key: {exc}") from exc
    try:
        chain = x509.load_pem_x509_certificates(certs_pem)
    except ValueError as exc:
        raise ConfigError(f"the C2PA certificate chain ({CERTS_ENV}) is not PEM certificates: {exc}") from exc
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ConfigError(f"the first certificate of {CERTS_ENV} is not the certificate of the key in {KEY_ENV}: "
                          "put the signing certificate first, then its intermediates.")
    now = datetime.datetime.now(datetime.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ConfigError(f"the C2PA signing certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to "
                          f"{leaf.not_valid_after_utc:%Y-%m-%d}, not now: renew it.")
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())  # c2pa reads PKCS#8 only
    return SigningIdentity(key_pem=pkcs8, certs_pem=certs_pem, alg=_algorithm(key), origin=origin,
                           subject=leaf.subject.rfc4514_string(), tsa_url=tsa_url)


def _algorithm(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in curves:
            return curves[key.curve.name]
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise ConfigError(f"C2PA signs with EC P-256/P-384/P-521, Ed25519 or RSA keys; {KEY_ENV} holds a "
                      f"{type(key).__name__} ({getattr(getattr(key, 'curve', None), 'name', '')}).")


# ---------------------------------------------------------------------- the test chain
def test_chain_dir() -> Path:
    """Where this machine's test chain lives: ``UNMASK_C2PA_DIR``, else ``$XDG_CACHE_HOME/unmask/c2pa``
    (``~/.cache/unmask/c2pa``): outside the repository, never committed."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "unmask" / "c2pa"


def load_test_identity(folder: Path) -> SigningIdentity:
    """The test chain in ``folder``, made there first when it is missing, unreadable or about to expire."""
    from cryptography import x509

    path = folder / TEST_CHAIN_FILE
    try:
        blocks = list(_PEM_BLOCK.finditer(path.read_bytes()))
        key_pem = b"".join(m.group(0) for m in blocks if m.group(1).endswith(b"PRIVATE KEY"))
        certs_pem = b"".join(m.group(0) for m in blocks if m.group(1) == b"CERTIFICATE")
        leaf = x509.load_pem_x509_certificate(certs_pem)
        left = leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        if left > datetime.timedelta(days=1):
            return operator_identity(key_pem, certs_pem, origin="test")
    except (OSError, ValueError, ConfigError):
        pass  # missing, damaged or expired: make a new one
    key_pem, certs_pem = make_test_chain()
    try:
        _write_private(path, key_pem + certs_pem)
    except OSError as exc:  # a read-only home: this process signs with a chain of its own
        warnings.warn(f"cannot keep the C2PA test chain in {folder} ({exc.strerror or exc}); this process signs with "
                      f"one of its own. Set {DIR_ENV} to a writable folder to keep one per install.", stacklevel=2)
    return operator_identity(key_pem, certs_pem, origin="test")


def make_test_chain(validity: datetime.timedelta = TEST_VALIDITY) -> tuple[bytes, bytes]:
    """A new two-level ES256 chain: ``(signing key PEM, signing certificate + CA certificate PEM)``.

    The signing certificate has what C2PA asks of one: the digital-signature key usage, the emailProtection
    extended key usage, and subject and authority key identifiers; its CA signs certificates only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANISATION)])

    def usage(**allowed: bool) -> x509.KeyUsage:
        names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: allowed.get(n, False) for n in names})

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: x509.Name, issuer: x509.Name, public_key, signing_key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + validity)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                               critical=False))

    ca = (certificate(name(TEST_CA_NAME), name(TEST_CA_NAME), ca_key.public_key(), ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (certificate(name(TEST_SIGNER_NAME), ca.subject, key.public_key(), ca_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    certs_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    return key_pem, certs_pem


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only, atomically (two processes making a chain at once each leave a
    whole file: the last one wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# ---------------------------------------------------------------------- the c2pa signer
def c2pa_module():
    """``import c2pa``, or a :class:`~unmask.errors.DependencyError` that says what to install."""
    try:
        import c2pa
    except ImportError as exc:
        raise DependencyError(f"writing and reading Content Credentials needs the c2pa-python package: pip install "
                              f"{C2PA_REQUIREMENT} (it is in requirements.txt).") from exc
    return c2pa


@functools.lru_cache(maxsize=8)
def c2pa_signer(identity: SigningIdentity):
    """The ``c2pa.Signer`` of ``identity`` (made once; c2pa signers are reused across manifests)."""
    c2pa = c2pa_module()
    info = c2pa.C2paSignerInfo(identity.alg.encode(), identity.certs_pem, identity.key_pem,
                               identity.tsa_url.encode() if identity.tsa_url else None)
    try:
        return c2pa.Signer.from_info(info)
    except c2pa.C2paError as exc:
        raise ConfigError(f"c2pa refused the signing key and chain ({exc}); check {KEY_ENV} and {CERTS_ENV}.") from exc


__all__ = ["KEY_ENV", "KEY_FILE_ENV", "CERTS_ENV", "CERTS_FILE_ENV", "TSA_ENV", "DIR_ENV", "SigningIdentity",
           "signing_identity", "operator_identity", "test_chain_dir", "load_test_identity", "make_test_chain",
           "c2pa_module", "c2pa_signer"]
