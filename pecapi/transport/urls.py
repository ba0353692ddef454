"""Checks of the base URLs pecapi is given (the API's and the token service's)."""

from __future__ import annotations

import ipaddress

from yarl import URL

from pecapi.errors import ConfigurationError

__all__ = ["check_base_url", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str | URL, *, secret: str = "token") -> URL:
    """``base_url`` as a URL, or a ConfigurationError: an http(s) URL with a host, no
    credentials, query or fragment, and plain http only to a loopback address (the
    ``secret`` would travel in clear text)."""
    try:
        url = URL(base_url)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"base_url is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url must be an http(s) URL with a host, not {url!s}")
    if url.user is not None or url.password is not None:
        raise ConfigurationError("base_url must not contain credentials")
    if url.query_string or url.fragment:
        raise ConfigurationError("base_url must not have a query or fragment")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http:// to {url.host}: the {secret} would travel in clear text "
            "(plain http is allowed for loopback addresses only)"
        )
    return url
