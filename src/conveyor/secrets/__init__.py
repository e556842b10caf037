"""Secret stores behind one protocol, chosen by URL scheme, and redaction of known values from all output."""

from conveyor.secrets.base import BACKENDS, SecretBackend, SecretStore, cluster_stores, open_store, scheme_of
from conveyor.secrets.boundaries import mask_json
from conveyor.secrets.redaction import install as install_redaction
from conveyor.secrets.redaction import redact, register_secret

__all__ = [
    "BACKENDS",
    "SecretBackend",
    "SecretStore",
    "cluster_stores",
    "install_redaction",
    "mask_json",
    "open_store",
    "redact",
    "register_secret",
    "scheme_of",
]
