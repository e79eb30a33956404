"""The bytes the upstream Azure provider (v1.8.2) writes for each object of a SecretProviderClass, computed here
from what the emulator holds (read over its Key Vault API) and the provider's documented conversions
(/work/shared/reference/azure-provider.md §4): plain secrets as stored (then objectEncoding), PKCS#12-backed
secrets as PKCS#8 key then the chain leaf first, `cert` as the leaf, `key` as a SubjectPublicKeyInfo PEM,
version history as `<name>/<index>` newest first. No code is shared with the product."""
import base64
import binascii
import hashlib

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def _b64url_int(text):
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _ordered_chain(certs):
    """§4.3: leaf → parent by AuthorityKeyId == SubjectKeyId; incomplete walk → original order."""
    def ext(cert, kind):
        try:
            value = cert.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None
        return value.key_identifier if kind is x509.AuthorityKeyIdentifier else value.digest

    parents, is_parent = {}, set()
    for i, cert in enumerate(certs):
        aki = ext(cert, x509.AuthorityKeyIdentifier)
        for j, other in enumerate(certs):
            if i != j and aki is not None and aki == ext(other, x509.SubjectKeyIdentifier):
                parents[i] = j
                is_parent.add(j)
                break
    leaves = [i for i in range(len(certs)) if i not in is_parent]
    assert leaves, "no leaf found"
    walk, current = [], leaves[0]
    while current is not None and len(walk) <= len(certs):
        walk.append(current)
        current = parents.get(current)
    if len(walk) != len(certs):
        return certs
    return [certs[i] for i in walk]


def pfx_to_pem(pfx_base64):
    """§4.2: every key as PKCS#8 `PRIVATE KEY`, then the certificates, chain-ordered."""
    key, cert, additional = pkcs12.load_key_and_certificates(base64.b64decode(pfx_base64), b"")
    certs = ([cert] if cert else []) + list(additional or [])
    out = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return out + b"".join(_pem_cert(c) for c in _ordered_chain(certs))


def jwk_to_pem(jwk):
    if jwk["kty"].startswith("RSA"):
        public = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"])).public_key()
    else:
        public = ec.EllipticCurvePublicNumbers(_b64url_int(jwk["x"]), _b64url_int(jwk["y"]), _CURVES[jwk["crv"]]).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _secret_bytes(bundle, encoding):
    value = bundle["value"]
    if bundle.get("kid") and bundle.get("contentType") == "application/x-pkcs12":
        data = pfx_to_pem(value)
    else:
        data = value.encode()
    encoding = (encoding or "utf-8").lower()
    if encoding == "base64":
        return base64.b64decode(data, validate=True)
    if encoding == "hex":
        return binascii.unhexlify(data)
    return data


def files_for(emulator, objects):
    """{path: bytes} the upstream provider writes for `objects` (a list of dicts as in the SPC's YAML)."""
    files = {}
    for obj in objects:
        name, kind = obj["objectName"], obj.get("objectType", "secret")
        path = obj.get("objectAlias") or name
        history = int(obj.get("objectVersionHistory", 0) or 0)
        if kind == "secret" and history > 1:
            versions = sorted([v for v in emulator.secret_versions(name) if v[2]], key=lambda v: v[1], reverse=True)
            for index, (version, _, _) in enumerate(versions[:history]):
                files[f"{path}/{index}"] = _secret_bytes(emulator.secret(name, version), obj.get("objectEncoding"))
        elif kind == "secret":
            files[path] = _secret_bytes(emulator.secret(name, obj.get("objectVersion", "")), obj.get("objectEncoding"))
        elif kind == "key":
            files[path] = jwk_to_pem(emulator.key(name, obj.get("objectVersion", ""))["key"])
        elif kind == "cert":
            cer = base64.b64decode(emulator.certificate(name, obj.get("objectVersion", ""))["cer"])
            files[path] = _pem_cert(x509.load_der_x509_certificate(cer))
        else:
            raise ValueError(f"unknown objectType {kind}")
    return files


def objects_parameter(objects):
    """The SPC's `objects` parameter: upstream's `array:` of YAML strings."""
    lines = ["array:"]
    for obj in objects:
        lines.append("  - |")
        lines += ["    " + line for line in yaml.safe_dump(obj, sort_keys=False).splitlines()]
    return "\n".join(lines) + "\n"


def digest(data):
    """What a failure message may show of file contents: length and a hash prefix, never the bytes."""
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}"
