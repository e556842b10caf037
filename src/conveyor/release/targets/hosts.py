"""Which registry hosts are spoken to without TLS verification: loopback addresses and exactly `localhost`."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from conveyor.errors import ConfigError


def registry_host(location: str) -> str:
    """The host name of `HOST[:PORT]` (IPv6 in brackets), lower-cased, without the port."""
    try:
        host = urlsplit(f"//{location}").hostname
    except ValueError:
        host = None
    if not host:
        raise ConfigError(f"registry {location!r} has no host name", hint="Write oci://HOST[:PORT]/REPO.")
    return host.lower().rstrip(".")


def is_loopback(location: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); never for a name that only starts so."""
    host = registry_host(location)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
