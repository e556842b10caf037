"""Secret stores behind one protocol, chosen by URL scheme, and redaction of known values from all output."""

from conveyor.secrets.base import SecretStore, open_store
from conveyor.secrets.boundaries import mask_json
from conveyor.secrets.redaction import install as install_redaction
from conveyor.secrets.redaction import redact, register_secret

__all__ = ["SecretStore", "install_redaction", "mask_json", "open_store", "redact", "register_secret"]
