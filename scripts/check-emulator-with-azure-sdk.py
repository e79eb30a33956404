#!/usr/bin/env python3
"""Keeps keyvault-emulator honest: drives it with Microsoft's official Python SDKs (azure-identity,
azure-keyvault-secrets, azure-keyvault-keys) over HTTPS, unchanged, and checks what they see.

Options used are the SDKs' own documented ones for private endpoints and emulators:
verify_challenge_resource=False (the vault host is 127.0.0.1, not *.vault.azure.net),
authority=<emulator> with disable_instance_discovery=True, and REQUESTS_CA_BUNDLE for the emulator's CA.
Workload identity assertions are signed RS256 by a key the script makes; the emulator trusts its public half
through --trust-issuer, as a cluster harness passes the API server's service-account public key.

Usage: check-emulator-with-azure-sdk.py PATH/TO/keyvault-emulator
Prints one line per check and a final 'N passed, N failed' line; exits non-zero on any failure.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


ISSUER = "https://oidc.example"


def jwt(key, subject, audience="api://AzureADTokenExchange", lifetime=3600):
    """A service account token as the API server signs one: RS256 (PKCS#1 v1.5, SHA-256) by `key`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def segment(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"aud": [audience], "sub": subject, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + lifetime}
    signing_input = segment(json.dumps({"alg": "RS256"}).encode()) + "." + segment(json.dumps(claims).encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + segment(signature)


def main():
    emulator_binary = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workdir = tempfile.mkdtemp(prefix="kvemu-")
    ca = os.path.join(workdir, "ca.pem")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_key = os.path.join(workdir, "sa.pub")
    with open(public_key, "wb") as out:
        out.write(issuer_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    process = subprocess.Popen(
        [emulator_binary, "--port", "0", "--seed", os.path.join(root, "examples", "emulator-seed.yaml"), "--ca-out", ca,
         "--trust-issuer", f"{ISSUER}={public_key}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline().strip()
    if "listening on " not in line:
        print("emulator did not start:", line, process.stdout.read())
        return 1
    base = line.split("listening on ")[1]
    os.environ["REQUESTS_CA_BUNDLE"] = ca

    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
    from azure.identity import ClientAssertionCredential, ClientSecretCredential
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient

    passed, failed = 0, 0

    def check(name, condition, detail=""):
        nonlocal passed, failed
        if condition:
            passed += 1
            print("ok  ", name)
        else:
            failed += 1
            print("FAIL", name, detail)

    try:
        sp = ClientSecretCredential(TENANT, "demo-sp", "demo-sp-secret", authority=base, disable_instance_discovery=True)
        secrets = SecretClient(vault_url=base, credential=sp, verify_challenge_resource=False)
        secret = secrets.get_secret("db-pass")
        check("client secret credential + 401 challenge + get_secret", secret.value == "first-password", secret.value)
        check("secret id parses (name, version)", secret.name == "db-pass" and len(secret.properties.version) == 32)
        created = secrets.set_secret("db-pass", "second-password")
        check("set_secret creates a new version", created.properties.version != secret.properties.version)
        check("get_secret returns the newest version", secrets.get_secret("db-pass").value == "second-password")
        check("get_secret by version", secrets.get_secret("db-pass", secret.properties.version).value == "first-password")
        versions = list(secrets.list_properties_of_secret_versions("api-key"))
        check("list_properties_of_secret_versions", len(versions) == 3, len(versions))
        secrets.update_secret_properties("api-key", versions[0].version, enabled=False)
        try:
            secrets.get_secret("api-key", versions[0].version)
            check("a disabled version is refused", False)
        except HttpResponseError as error:
            check("a disabled version is refused with 403", error.status_code == 403, error.status_code)
        try:
            secrets.get_secret("missing")
            check("a missing secret raises ResourceNotFoundError", False)
        except ResourceNotFoundError as error:
            check("a missing secret raises ResourceNotFoundError (SecretNotFound)", error.error.code == "SecretNotFound", error.error.code)

        # The vault's secret list ("Get Secrets"): pages, tags, enabled flags, attributes.updated, and a 403
        # for an identity that may get secrets but not list them.
        listed = {p.name: p for p in secrets.list_properties_of_secrets()}
        check("list_properties_of_secrets lists the seeded secrets",
              {"db-pass", "api-key", "db-creds", "feature-checkout", "feature-legacy"} <= set(listed), sorted(listed))
        check("a listed secret's id has no version", all(p.version is None for p in listed.values()),
              [p.id for p in listed.values() if p.version is not None])
        check("tags are read back from the list", listed["feature-checkout"].tags == {"env": "prod", "team": "web"},
              listed["feature-checkout"].tags)
        check("the enabled flag is read back from the list",
              listed["feature-legacy"].enabled is False and listed["feature-checkout"].enabled is True)
        check("contentType is read back from the list", listed["db-creds"].content_type == "application/json",
              listed["db-creds"].content_type)
        for index in range(26):
            secrets.set_secret(f"bulk-{index:02d}", f"bulk-value-{index}", tags={"batch": "bulk"})
        pages = [list(page) for page in secrets.list_properties_of_secrets().by_page()]
        total = len(listed) + 26
        check("more than 25 secrets list as pages of 25 (Key Vault's default page size)",
              [len(page) for page in pages] == [25, total - 25], [len(page) for page in pages])
        small = [[p.name for p in page] for page in secrets.list_properties_of_secrets(max_page_size=4).by_page()]
        names = [name for page in small for name in page]
        check("max_page_size=4 pages by 4 and every secret comes once",
              all(len(page) == 4 for page in small[:-1]) and 1 <= len(small[-1]) <= 4 and len(names) == total
              and len(set(names)) == total, [len(page) for page in small])
        check("the list is in case-insensitive name order", names == sorted(names, key=str.upper), names[:6])
        before = listed["feature-checkout"]
        secrets.update_secret_properties("feature-checkout", tags={"env": "prod", "team": "payments"})
        after = {p.name: p for p in secrets.list_properties_of_secrets()}["feature-checkout"]
        check("changing tags changes them in the list and advances updated_on, not created_on",
              after.tags == {"env": "prod", "team": "payments"} and after.updated_on > before.updated_on
              and after.created_on == before.created_on, (after.tags, after.updated_on, before.updated_on))
        secrets.update_secret_properties("feature-search", enabled=False)
        search = {p.name: p for p in secrets.list_properties_of_secrets()}["feature-search"]
        check("disabling the current version shows enabled=False in the list", search.enabled is False)
        renewed = secrets.set_secret("feature-checkout", "off")
        current = {p.name: p for p in secrets.list_properties_of_secrets()}["feature-checkout"]
        check("a new version is the listed one: new created_on and updated_on, its own (no) tags",
              current.created_on == renewed.properties.created_on and current.created_on > after.created_on
              and current.updated_on == current.created_on and not current.tags, (current.created_on, current.tags))
        reader_credential = ClientSecretCredential(TENANT, "demo-reader", "demo-reader-secret", authority=base,
                                                   disable_instance_discovery=True)
        reader = SecretClient(vault_url=base, credential=reader_credential, verify_challenge_resource=False)
        check("an identity with secret get only reads a secret", reader.get_secret("db-creds").properties.name == "db-creds")
        try:
            list(reader.list_properties_of_secrets())
            check("an identity with secret get only is refused the list", False)
        except HttpResponseError as error:
            check("an identity with secret get only is refused the list with 403 Forbidden",
                  error.status_code == 403 and error.error is not None and error.error.code == "Forbidden"
                  and "secrets list permission" in error.message, (error.status_code, str(error)[:200]))

        wi = ClientAssertionCredential(TENANT, "5f8b6a9e-demo-workload", lambda: jwt(issuer_key, "system:serviceaccount:default:demo"),
                                       authority=base, disable_instance_discovery=True)
        keys = KeyClient(vault_url=base, credential=wi, verify_challenge_resource=False)
        key = keys.get_key("signing")
        check("client assertion (workload identity) + get_key", key.key_type == "EC" and key.key.crv == "P-256", key.key_type)

        bad = ClientSecretCredential(TENANT, "demo-sp", "wrong", authority=base, disable_instance_discovery=True)
        try:
            SecretClient(vault_url=base, credential=bad, verify_challenge_resource=False).get_secret("db-pass")
            check("a wrong client secret is refused", False)
        except ClientAuthenticationError as error:
            check("a wrong client secret is refused with AADSTS7000215", "AADSTS7000215" in str(error), str(error)[:200])
        other = ClientAssertionCredential(TENANT, "5f8b6a9e-demo-workload", lambda: jwt(issuer_key, "system:serviceaccount:default:other"),
                                          authority=base, disable_instance_discovery=True)
        try:
            KeyClient(vault_url=base, credential=other, verify_challenge_resource=False).get_key("signing")
            check("an unknown federated subject is refused", False)
        except ClientAuthenticationError as error:
            check("an unknown federated subject is refused with AADSTS70021", "AADSTS70021" in str(error), str(error)[:200])
        forged = ClientAssertionCredential(TENANT, "5f8b6a9e-demo-workload", lambda: jwt(other_key, "system:serviceaccount:default:demo"),
                                           authority=base, disable_instance_discovery=True)
        try:
            KeyClient(vault_url=base, credential=forged, verify_challenge_resource=False).get_key("signing")
            check("an assertion signed by a key the issuer does not have is refused", False)
        except ClientAuthenticationError as error:
            check("an assertion signed by another key is refused with AADSTS50013", "AADSTS50013" in str(error), str(error)[:200])
    except Exception as error:  # noqa: BLE001 - report any SDK failure as a failed check
        check("unexpected exception", False, repr(error))
    finally:
        process.terminate()
        process.wait(timeout=10)

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
