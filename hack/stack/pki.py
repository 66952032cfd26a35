"""Certificates, service-account key and admin kubeconfig for the local dev/test stack.

Test/dev infrastructure only. A real API server needs TLS, a client CA and a
service-account signing key; generating them with `cryptography` keeps the stack
free of openssl/cfssl and makes `up` reproducible on a fresh machine. Everything is
written once into `${STATE}/certs` and reused by later `up`s (so tokens and the
kubeconfig stay valid while the state dir lives).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hack.stack.stackconf import write_if_changed

SERVING_DNS = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"]
SERVING_IPS = ["127.0.0.1", "10.0.0.1"]
VALIDITY = dt.timedelta(days=3650)

Key = ec.EllipticCurvePrivateKey


def _write_key(path: Path, key: Key | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + VALIDITY))


def _leaf(certs: Path, stem: str, subject: x509.Name, ca_key: Key, ca_cert: x509.Certificate,
          usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None = None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    b = (_builder(subject, ca_cert.subject, key)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                      content_commitment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=False, crl_sign=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    _write_key(certs / f"{stem}.key", key)
    (certs / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(certs: Path) -> bool:
    """Create CA, serving cert, admin client cert and SA key pair unless present.

    Returns True when new material was generated.
    """
    needed = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key",
              "sa.key", "sa.pub"]
    if all((certs / n).exists() for n in needed):
        return False
    certs.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("faiss-local-stack-ca")
    ca_cert = (_builder(ca_name, ca_name, ca_key)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    _write_key(certs / "ca.key", ca_key)
    (certs / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in SERVING_IPS]
    _leaf(certs, "apiserver", _name("kube-apiserver"), ca_key, ca_cert,
          ExtendedKeyUsageOID.SERVER_AUTH, sans)
    _leaf(certs, "admin", _name("faiss-local-admin", "system:masters"), ca_key, ca_cert,
          ExtendedKeyUsageOID.CLIENT_AUTH)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(certs / "sa.key", sa_key)
    (certs / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return True


def write_kubeconfig(path: Path, certs: Path, server: str) -> None:
    """Admin kubeconfig with inline certs (kubectl, helm, kopf and clients read it)."""
    def b64(name: str) -> str:
        return base64.b64encode((certs / name).read_bytes()).decode()

    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "faiss-local", "cluster": {
            "server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "faiss-local-admin", "user": {
            "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "faiss-local", "context": {
            "cluster": "faiss-local", "user": "faiss-local-admin", "namespace": "default"}}],
        "current-context": "faiss-local",
    }
    write_if_changed(path, yaml.safe_dump(cfg, sort_keys=False), mode=0o600)
