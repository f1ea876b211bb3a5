"""Content Credentials: every recovered image unmask writes carries a signed C2PA manifest that says what the XMP
says, read back here with ``c2pa.Reader`` itself; changing the pixels breaks it; who signs (an operator's key from
the environment, else a test chain made once per install, which reads as untrusted); uploads that carry credentials
are reported and travel into the output as its parent ingredient; damaged credentials get a clear error."""

from __future__ import annotations

import datetime
import io
import json
import shutil
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

c2pa = pytest.importorskip("c2pa")

from unmask.errors import ConfigError, ImageError  # noqa: E402
from unmask.faces.provenance import (  # noqa: E402
    COMPOSITE_SYNTHETIC,
    TRAINED_ALGORITHMIC_MEDIA,
    Provenance,
    encode_image,
    read_credentials,
    read_provenance,
    save_image,
    signing,  # noqa: E402
)
from unmask.pipeline import WEIGHTS_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "demo" / "examples" / "teaching_kn95.png"
needs_teaching = pytest.mark.skipif(not (WEIGHTS_DIR / "teaching" / "pipeline.json").is_file(),
                                    reason="teaching weights not present")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
PHOTO = np.asarray(Image.open(EXAMPLE).convert("RGB"))
MADE = Provenance("teaching", "encoder", regions=((29, 55, 96, 116),))


@pytest.fixture(autouse=True)
def no_operator_key(monkeypatch, tmp_path_factory):
    """No operator key, and the test chain in a folder of this test session (made once, like once per install)."""
    for name in (signing.KEY_ENV, signing.KEY_FILE_ENV, signing.CERTS_ENV, signing.CERTS_FILE_ENV, signing.TSA_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(signing.DIR_ENV, str(tmp_path_factory.getbasetemp() / "c2pa-test-chain"))


def store_of(data: bytes, fmt: str) -> tuple[dict, dict, str]:
    """``(manifest store, active manifest, validation state)`` as ``c2pa.Reader`` reads them."""
    with c2pa.Reader(MIME[fmt], io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
        return store, store["manifests"][store["active_manifest"]], reader.get_validation_state()


def actions_of(manifest: dict) -> list[dict]:
    return [a for assertion in manifest["assertions"] if assertion["label"].startswith("c2pa.actions")
            for a in assertion["data"]["actions"]]


def check_output_manifest(data: bytes, fmt: str) -> dict:
    """The output photo's manifest: opened (the parent ingredient, named without its file name, no thumbnail), then
    edited with the composite source type and the regions of the XMP beside it; intact, signed by an untrusted (test)
    signer."""
    store, manifest, state = store_of(data, fmt)
    opened, edited = actions_of(manifest)
    assert opened["action"] == "c2pa.opened" and opened["parameters"]["ingredients"]
    (parent,) = manifest["ingredients"]
    assert parent["relationship"] == "parentOf" and parent["title"] == "input photo"
    assert "thumbnail" not in manifest  # unmask embeds no picture: of the output, or of the input
    assert "thumbnail" not in parent or parent.get("active_manifest")  # (an upload's own manifest travels whole)
    assert edited["action"] == "c2pa.edited" and edited["digitalSourceType"] == COMPOSITE_SYNTHETIC
    xmp = read_provenance(data)
    assert xmp.digital_source_type == COMPOSITE_SYNTHETIC
    assert edited["parameters"]["bundle"] == xmp.bundle and edited["parameters"]["mode"] == xmp.mode
    boxes = [(r["shape"]["origin"]["x"], r["shape"]["origin"]["y"], r["shape"]["width"], r["shape"]["height"])
             for change in edited.get("changes", []) for r in change["region"]]
    assert boxes == [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in xmp.regions]
    assert state == "Valid" and [s["code"] for s in store["validation_status"]] == ["signingCredential.untrusted"]
    return manifest


def check_recovered_manifest(data: bytes, fmt: str) -> None:
    _, manifest, state = store_of(data, fmt)
    (created,) = actions_of(manifest)
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert "ingredients" not in manifest and state == "Valid"
    assert read_provenance(data).digital_source_type == TRAINED_ALGORITHMIC_MEDIA


def has_manifest(data: bytes, fmt: str) -> bool:
    return c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data)) is not None


# ---------------------------------------------------------------------------------------------- every format
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_every_format_carries_the_manifest_beside_the_xmp(fmt):
    upload = io.BytesIO()
    Image.fromarray(PHOTO).save(upload, "JPEG")
    output = encode_image(PHOTO, fmt, MADE.with_parent(upload.getvalue()))
    check_output_manifest(output, fmt)
    assert read_provenance(output) == MADE  # the XMP survives the embedding
    ours = read_credentials(output)
    assert ours.regions == MADE.regions and ours.source_types == (COMPOSITE_SYNTHETIC,) and ours.untrusted
    check_recovered_manifest(encode_image(PHOTO[:64, :64], fmt, MADE.for_role("recovered")), fmt)
    for role in ("input", "mask"):  # no synthesised pixels: the XMP says what they are, no manifest
        data = encode_image(PHOTO[:64, :64, 0], fmt, MADE.for_role(role))
        assert not has_manifest(data, fmt) and read_provenance(data).role == role


def test_the_labelled_photo_records_its_label_in_both():
    data = encode_image(PHOTO, "PNG", MADE, label=True)
    _, manifest, _ = store_of(data, "PNG")
    assert actions_of(manifest)[1]["parameters"]["visibleLabel"] == read_provenance(data).label != ""


# ---------------------------------------------------------------------------------------------- the hard binding
def flip_pixel_byte(data: bytes, fmt: str) -> bytes:
    """``data`` with one byte of its compressed pixels changed (the container stays well-formed)."""
    out = bytearray(data)
    if fmt == "PNG":
        pos = out.index(b"IDAT") - 4
        (length,) = struct.unpack(">I", out[pos:pos + 4])
        out[pos + 8 + length // 2] ^= 0x01
        out[pos + 8 + length:pos + 12 + length] = struct.pack(">I", zlib.crc32(out[pos + 4:pos + 8 + length]))
    elif fmt == "JPEG":
        start = out.index(b"\xff\xda")
        pos = start + 2 + struct.unpack(">H", out[start + 2:start + 4])[0] + 40
        while 0xFF in (out[pos - 1], out[pos], out[pos] ^ 0x01):
            pos += 1
        out[pos] ^= 0x01
    else:
        pos = max(out.find(b"VP8 "), out.find(b"VP8L"))
        out[pos + 8 + struct.unpack("<I", out[pos + 4:pos + 8])[0] // 2] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_changing_the_pixels_after_signing_breaks_the_manifest(fmt):
    signed = encode_image(PHOTO, fmt, MADE)
    assert read_credentials(signed).intact
    tampered = read_credentials(flip_pixel_byte(signed, fmt))
    assert tampered.state == "Invalid" and not tampered.intact
    assert "assertion.dataHash.mismatch" in dict(tampered.failures)


# ---------------------------------------------------------------------------------------------- who signs
def throwaway_chain(organisation: str, *, email_protection: bool = True,
                    traditional: bool = False) -> tuple[bytes, bytes]:
    """A CA and a signing certificate made here with ``cryptography`` (independently of unmask's test chain);
    the key in PKCS#8 PEM, or in the traditional EC form (which c2pa itself does not read)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} root")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsroom signer"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])
    flags = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                           "encipher_only", "decipher_only"), False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **flags), True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA384()))
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **flags), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if email_protection:
        leaf = leaf.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    leaf = leaf.sign(ca_key, hashes.SHA384())
    key_format = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    key_pem = key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption())
    return key_pem, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))


def test_without_an_operator_key_a_test_chain_made_once_signs_and_reads_as_untrusted(monkeypatch, tmp_path):
    from demo.handlers import signing_note

    monkeypatch.setenv(signing.DIR_ENV, str(tmp_path / "chain"))
    first = read_credentials(encode_image(PHOTO, "PNG", MADE))
    chain = tmp_path / "chain" / signing.TEST_CHAIN_FILE
    assert chain.is_file() and stat.S_IMODE(chain.stat().st_mode) == 0o600  # the key: its owner's only
    made = chain.read_bytes()
    signing._identity.cache_clear()  # a new process: the same chain from the file, not a new one
    second = read_credentials(encode_image(PHOTO, "JPEG", MADE))
    assert chain.read_bytes() == made and first.signer == second.signer
    assert first.signer.startswith(signing.TEST_SIGNER_NAME) and "untrusted" in first.signer
    assert first.untrusted and first.intact and first.state == "Valid"
    identity = signing.signing_identity()
    assert identity.is_test and identity.alg == "es256"
    (tmp_path / "read-only").write_text("a file where the folder would be")
    monkeypatch.setenv(signing.DIR_ENV, str(tmp_path / "read-only" / "chain"))
    with pytest.warns(UserWarning, match="signs with one of its own"):  # a home it cannot write: still signed
        assert read_credentials(encode_image(PHOTO, "PNG", MADE)).untrusted
    note = signing_note()  # what the page says next to its responsible-use notice
    assert "test certificate" in note and "untrusted" in note and signing.KEY_ENV in note


def test_an_operator_key_from_the_environment_signs(monkeypatch, tmp_path):
    key_pem, certs_pem = throwaway_chain("Example Newsroom", traditional=True)
    (tmp_path / "chain.pem").write_bytes(certs_pem)
    monkeypatch.setenv(signing.KEY_ENV, key_pem.decode().replace("\n", "\\n"))  # a secret pasted on one line
    monkeypatch.setenv(signing.CERTS_FILE_ENV, str(tmp_path / "chain.pem"))
    monkeypatch.setenv(signing.DIR_ENV, str(tmp_path / "no-test-chain"))
    identity = signing.signing_identity()
    assert identity.origin == "operator" and identity.alg == "es384" and "Example Newsroom" in identity.describe()
    data = encode_image(PHOTO, "WEBP", MADE)
    _, manifest, _ = store_of(data, "WEBP")
    assert manifest["signature_info"]["issuer"] == "Example Newsroom"
    assert manifest["signature_info"]["alg"].lower() == "es384"
    assert not (tmp_path / "no-test-chain").exists()  # the test chain is never made when an operator signs


def test_a_misconfigured_operator_key_is_named(monkeypatch, tmp_path):
    key_pem, certs_pem = throwaway_chain("Example Newsroom")
    monkeypatch.setenv(signing.KEY_ENV, key_pem.decode())
    with pytest.raises(ConfigError, match=f"{signing.KEY_ENV} .* is set but {signing.CERTS_ENV} is not"):
        signing.signing_identity()
    other_key, other_certs = throwaway_chain("Someone Else")
    monkeypatch.setenv(signing.CERTS_ENV, other_certs.decode())
    with pytest.raises(ConfigError, match="not the certificate of the key"):
        signing.signing_identity()
    plain_key, plain_certs = throwaway_chain("No EKU", email_protection=False)
    monkeypatch.setenv(signing.KEY_ENV, plain_key.decode())
    monkeypatch.setenv(signing.CERTS_ENV, plain_certs.decode())
    with pytest.raises(ConfigError, match="extended key usage"):
        encode_image(PHOTO, "PNG", MADE)


# ---------------------------------------------------------------------------------------------- uploads
def generated_upload(tmp_path: Path) -> Path:
    """A JPEG that some image generator signed as wholly AI-made (signed here with a throwaway chain)."""
    key_pem, certs_pem = throwaway_chain("Some Generator Inc")
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es384", certs_pem, key_pem, None))
    definition = {"claim_generator_info": [{"name": "some-generator", "version": "2.0"}],
                  "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                      {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]}}]}
    plain = io.BytesIO()
    Image.fromarray(PHOTO).save(plain, "JPEG", quality=95)
    signed = io.BytesIO()
    with c2pa.Builder(definition) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(plain.getvalue()), signed)
    path = tmp_path / "generated.jpg"
    path.write_bytes(signed.getvalue())
    return path


def test_an_upload_with_credentials_is_reported_and_travels_into_the_output(tmp_path):
    from demo.handlers import input_credentials

    upload = generated_upload(tmp_path)
    before = upload.read_bytes()
    note = input_credentials(str(upload))  # what the page shows when the photo is uploaded
    assert "carries Content Credentials" in note and "generative model" in note and "trainedAlgorithmicMedia" in note
    assert "some-generator 2.0" in note and "Some Generator Inc" in note
    output = encode_image(PHOTO, "PNG", MADE.with_parent(upload))
    parent = check_output_manifest(output, "PNG")["ingredients"][0]
    assert parent["active_manifest"]  # its own manifest travels inside the output's store, whole
    (ingredient,) = read_credentials(output).ingredients
    assert ingredient.credentials.generator == "some-generator 2.0"
    assert ingredient.credentials.source_types == (TRAINED_ALGORITHMIC_MEDIA,) and ingredient.credentials.intact
    assert upload.read_bytes() == before  # the upload itself is left as it was
    assert b"generated.jpg" not in output  # an upload's file name (often a person's name) is not written
    assert input_credentials(str(EXAMPLE)) == ""  # a photo that says nothing gets no note


def test_damaged_or_unsupported_credentials_get_a_clear_error(tmp_path, capsys):
    from demo.handlers import input_credentials
    from unmask.__main__ import main

    signed = bytearray(generated_upload(tmp_path).read_bytes())
    start = signed.index(b"c2pa.actions")
    signed[start:start + 40] = b"\x00" * 40
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bytes(signed))
    with pytest.raises(ImageError, match="broken.jpg carries Content Credentials that cannot be read"):
        read_credentials(broken)
    assert "Could not read its provenance" in input_credentials(str(broken))
    assert main(["provenance", str(broken)]) == 1 and "cannot be read" in capsys.readouterr().out
    # Unmasking it still writes a signed output: the parent is named, without the credentials it cannot read.
    output = encode_image(PHOTO, "PNG", MADE.with_parent(broken))
    assert read_credentials(output).ingredients[0].title == "input photo"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="not an image file"):
        read_credentials(text)
    bmp = tmp_path / "photo.bmp"
    Image.fromarray(PHOTO).save(bmp)
    assert read_credentials(bmp) is None  # a format that cannot carry them carries none


# ---------------------------------------------------------------------------------------------- every output path
def test_the_provenance_command_prints_both_records(tmp_path, capsys):
    from unmask.__main__ import main

    path = save_image(tmp_path / "out.jpg", PHOTO, MADE.with_parent(EXAMPLE))
    assert main(["provenance", str(path)]) == 0
    out = capsys.readouterr().out
    for words in ("c2pa.opened: 'input photo' (the parent ingredient)",
                  "c2pa.edited: compositeWithTrainedAlgorithmicMedia, by unmask", "region 1: x 29, y 55, 67 x 61 px",
                  "signed by: unmask test signer", "signingCredential.untrusted", "XMP (unsigned): composite",
                  "The manifest and the XMP agree."):
        assert words in out, words
    assert main(["provenance", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["credentials"]["state"] == "Valid" and record["xmp"]["role"] == "output"
    assert record["disagreements"] == [] and record["problems"] == []


@needs_teaching
@pytest.mark.slow
def test_the_cli_and_unmask_result_save_sign_every_recovered_image(tmp_path):
    from unmask.__main__ import main
    from unmask.pipeline import UnmaskPipeline

    assert main([str(EXAMPLE), "-o", str(tmp_path), "--aligned", "--save-crops", "--format", "webp"]) == 0
    check_output_manifest((tmp_path / "teaching_kn95.webp").read_bytes(), "WEBP")
    check_recovered_manifest((tmp_path / "teaching_kn95.face0.recovered.webp").read_bytes(), "WEBP")
    assert not has_manifest((tmp_path / "teaching_kn95.face0.mask.webp").read_bytes(), "WEBP")
    result = UnmaskPipeline.from_pretrained("teaching", device="cpu")(EXAMPLE.read_bytes(), aligned=True)
    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG")):  # bytes in: the parent ingredient is those bytes
        check_output_manifest(result.save(tmp_path / f"saved{suffix}").read_bytes(), fmt)


@needs_teaching
@pytest.mark.slow  # imports gradio
def test_the_page_and_the_api_sign_every_recovered_image(tmp_path):
    from demo.handlers import ui_run, unmask
    from demo.outputs import OutputFiles

    (before, after), full, crops, _, _ = ui_run(str(EXAMPLE), None, None, None, "teaching", "auto", 0, 0, True,
                                               False, progress=lambda *a, **k: None)
    for path in (after, full):
        check_output_manifest(Path(path).read_bytes(), "PNG")
    roles = {read_provenance(path).role: Path(path).read_bytes() for path, _ in crops}
    check_recovered_manifest(roles["recovered"], "PNG")
    assert not has_manifest(roles["input"], "PNG") and not has_manifest(Path(before).read_bytes(), "PNG")
    api_photo, api_mask, _ = unmask(str(EXAMPLE), aligned=True, model="teaching")  # the /unmask API and MCP tool
    check_output_manifest(Path(api_photo).read_bytes(), "PNG")
    assert not has_manifest(Path(api_mask).read_bytes(), "PNG")
    big = np.tile(PHOTO, (12, 12, 1))  # above 2 megapixels the app writes JPEG
    jpeg = OutputFiles(tmp_path).save(big, "unmasked", MADE.with_parent(EXAMPLE))
    assert jpeg.endswith(".jpg")
    check_output_manifest(Path(jpeg).read_bytes(), "JPEG")


def test_xmp_and_manifest_come_from_one_record():
    from unmask.faces.provenance.report import inspect

    two = Provenance("ffhq", "encoder+refine", regions=((1, 2, 11, 22), (30, 30, 40, 47)))
    report = inspect(encode_image(PHOTO, "PNG", two))
    assert report.credentials.regions == report.xmp.regions == two.regions and report.disagreements == ()
    assert dict(report.credentials.actions[-1].parameters) == {"bundle": "ffhq", "mode": "encoder+refine"}


def test_requests_at_once_share_one_signer():
    # The app serves requests on threads: they sign with one c2pa signer and context at once.
    from concurrent.futures import ThreadPoolExecutor

    def write(i: int):
        made = Provenance("teaching", "encoder", regions=((i, i, i + 20, i + 30),))
        return read_credentials(encode_image(PHOTO, ("PNG", "JPEG", "WEBP")[i % 3], made))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(write, range(24)))
    assert all(r.intact for r in results)
    assert [r.regions for r in results] == [((i, i, i + 20, i + 30),) for i in range(24)]


@needs_teaching
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install chromium)")
def test_browser_the_page_reports_an_uploads_credentials_before_unmasking(tmp_path):
    from app_server import serve_demo
    from playwright.sync_api import sync_playwright

    from demo.make_screenshots import launch_chromium

    upload = generated_upload(tmp_path)
    with serve_demo() as url, sync_playwright() as p:
        browser = launch_chromium(p, CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#unmask-button", timeout=60_000)
        assert "test certificate" in page.locator("#responsible-use").inner_text()
        page.locator("#input-image input[type=file]").first.set_input_files(str(upload))
        page.get_by_text("This photo carries Content Credentials").first.wait_for(timeout=60_000)
        note = page.locator("#input-credentials").inner_text()
        browser.close()
    assert "generative model" in note and "trainedAlgorithmicMedia" in note and "Some Generator Inc" in note
