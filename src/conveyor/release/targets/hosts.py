"""Which registry hosts are spoken to without TLS verification: loopback addresses and exactly `localhost`."""

from __future__ import annotations

import ipaddress
import re

from conveyor.errors import ConfigError

BRACKETED = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$")
PLAIN = re.compile(r"^([^\s:/\[\]@]+)(?::(\d{1,5}))?$")


def registry_host(location: str) -> str:
    """The host of `HOST[:PORT]` (an IPv6 address in brackets), lower-cased, without the port; anything else,
    such as `[::1].example.com`, is refused."""
    match = BRACKETED.match(location) or PLAIN.match(location)
    if match is None:
        raise ConfigError(
            f"registry {location!r} is not HOST[:PORT]", hint="Write oci://HOST[:PORT]/REPO (IPv6 as [ADDRESS])."
        )
    return match.group(1).lower().rstrip(".")


def is_loopback(location: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); never for a name that only starts so."""
    host = registry_host(location)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
