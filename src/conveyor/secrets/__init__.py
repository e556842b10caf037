"""Secret stores behind one protocol, chosen by URL scheme, and redaction of known values from all output."""

from conveyor.secrets.base import SecretStore, open_store
from conveyor.secrets.redaction import redact, register_secret

__all__ = ["SecretStore", "open_store", "redact", "register_secret"]
