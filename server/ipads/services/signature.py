"""The `Mdm-Signature` header: a detached CMS signature over the body by the iPad's identity."""

from __future__ import annotations

import base64
import binascii
import hashlib

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# The digests Trolley accepts. SHA-1 stays because Apple does not document which digest an iPad
# uses; the signature covers a body the iPad made, so a collision gains an attacker nothing.
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class BadSignature(Exception):
    """The message is not signed, or not by the certificate it carries."""


def signer_of(body: bytes, header: str | None) -> x509.Certificate:
    """The certificate whose key signed `body`; raises BadSignature if anything does not match."""
    if not header:
        raise BadSignature("no Mdm-Signature header")
    try:
        info = cms.ContentInfo.load(base64.b64decode(header.strip(), validate=True))
        if info["content_type"].native != "signed_data":
            raise BadSignature("not a CMS SignedData")
        signed = info["content"]
        if signed["encap_content_info"]["content"].native is not None:
            raise BadSignature("the signature is not detached")
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            raise BadSignature("expected exactly one signer")
        signer = signers[0]
        return _verify(body, signed, signer)
    except BadSignature:
        raise
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise BadSignature(f"the signature cannot be read ({type(exc).__name__})") from exc


def _certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    sid = signer["sid"]
    if sid.name != "issuer_and_serial_number":
        raise BadSignature("the signer is not named by issuer and serial number")
    wanted = sid.chosen
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if cert.issuer == wanted["issuer"] and cert.serial_number == wanted["serial_number"].native:
            return x509.load_der_x509_certificate(cert.dump())
    raise BadSignature("the signer's certificate is not in the signature")


def _verify(body: bytes, signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    certificate = _certificate(signed, signer)
    digest_name = signer["digest_algorithm"]["algorithm"].native
    algorithm = _HASHES.get(digest_name)
    if algorithm is None:
        raise BadSignature(f"digest {digest_name} is not accepted")
    attrs = signer["signed_attrs"]
    if attrs.native is None:
        signed_bytes = body
    else:
        by_type = {attr["type"].native: attr["values"] for attr in attrs}
        digest = by_type.get("message_digest")
        if digest is None or len(digest) != 1:
            raise BadSignature("the signed attributes have no message digest")
        if digest[0].native != hashlib.new(digest_name, body).digest():
            raise BadSignature("the body is not the one that was signed")
        # RFC 5652 §5.4: the signature covers the attributes as an explicit SET OF.
        signed_bytes = b"\x31" + attrs.dump()[1:]
    signature = signer["signature"].native
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(algorithm))
        else:
            raise BadSignature(f"a {type(key).__name__} key is not accepted")
    except InvalidSignature as exc:
        raise BadSignature("the signature does not match the body") from exc
    return certificate
