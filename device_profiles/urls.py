"""Checks for the identifiers a profile holds: web addresses, app bundle ids, extension ids."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

# Chrome's URLAllowlist takes at most 1000 entries and the ChromeOS UrlBlocking lists say
# "Maximum of 1000 URLs"; no target accepts more, so the loader refuses longer lists.
MAX_URLS_PER_LIST = 1000
# Apple asks to keep DenyListURLs to "about 500"; beyond that the iPad export only warns.
APPLE_DENY_LIST_SOFT_LIMIT = 500
MAX_URL_LENGTH = 2048

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_EXTENSION_ID = re.compile(r"^[a-p]{32}$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG_LENGTH = 64


def url_problem(text: str, *, allow_query: bool = False) -> str | None:
    """Why `text` is not a usable http(s) web address, or None when it is fine."""
    if text != text.strip() or any(ch.isspace() for ch in text):
        return "a web address cannot contain spaces"
    if len(text) > MAX_URL_LENGTH:
        return f"a web address can be at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"not a valid web address ({exc})"
    if parts.scheme not in ("http", "https"):
        return "write the full address starting with https:// (for example https://www.bbc.co.uk)"
    if parts.username is not None or parts.password is not None:
        return "a web address in a profile cannot contain a user name or password"
    host = parts.hostname
    if not host:
        return "the web address has no site name after https://"
    if not _host_ok(host):
        return f"'{host}' is not a valid site name"
    if port == 0:
        return "port 0 is not a valid port"
    # Filters match sites and paths; a query or fragment would mean different things to
    # Apple (substring match) and Chrome (its own filter format), so refuse it up front.
    if not allow_query and (parts.query or "?" in text):
        return "remove the part from '?' onwards: filters match sites and paths, not queries"
    if parts.fragment or "#" in text:
        return "remove the part from '#' onwards: it never reaches the filter"
    return None


def filterable_address(text: str) -> tuple[str, str]:
    """A pasted web address as filters can match it, and the part they cannot.

    Teachers paste whole links: https://www.youtube.com/watch?v=abc123 becomes
    ("https://www.youtube.com/watch", "?v=abc123"). An address without a scheme is taken as
    https, and a site's bare trailing "/" is dropped so each site is written one way.
    """
    text = text.strip()
    if text and not _SCHEME.match(text):
        text = "https://" + text
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    address, rest = text[:cut], text[cut:]
    if address.endswith("/") and address.count("/") == 3:
        address = address[:-1]
    return address, rest


def _host_ok(host: str) -> bool:
    """True for a DNS name with a real top-level domain, or an IP address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253:
        return False
    return all(_LABEL.match(label) for label in labels) and bool(_TLD.match(labels[-1]))


def chrome_url_filter(url: str) -> str:
    """The Chrome URL filter (`host[:port][/path]`) for a validated http(s) address.

    The scheme is dropped on purpose: a school that allows or blocks a site means both http and
    https (sites redirect between them), and Chrome's format treats a missing scheme as "any".
    A leading `www.` is dropped too, as Apple's filter does, so blocking https://www.tiktok.com
    also blocks tiktok.com and m.tiktok.com on every platform alike.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    text = host if parts.port is None else f"{host}:{parts.port}"
    if parts.path not in ("", "/"):
        text += parts.path
    return text


def default_title(url: str) -> str:
    """A bookmark title for an allowed address when the profile gives none: its site name."""
    host = (urlsplit(url).hostname or url).lower()
    return host.removeprefix("www.")


def bundle_id_problem(text: str) -> str | None:
    """Why `text` is not an app bundle id such as com.apple.mobilesafari, or None."""
    if not _BUNDLE_ID.match(text):
        return "not an app bundle id (it looks like com.example.app)"
    return None


def extension_id_problem(text: str) -> str | None:
    """Why `text` is not a Chrome extension id (32 letters a to p), or None."""
    if not _EXTENSION_ID.match(text):
        return "not a Chrome extension id (32 letters from a to p)"
    return None


def slug_problem(text: str) -> str | None:
    """Why `text` cannot be a profile id (lower-case words joined by hyphens), or None."""
    if len(text) > MAX_SLUG_LENGTH:
        return f"an id can be at most {MAX_SLUG_LENGTH} characters"
    if not _SLUG.match(text):
        return "use lower-case letters, digits and single hyphens, like ks1-ipad"
    return None


def slugify(name: str) -> str:
    """A profile id made from its name: 'KS1 iPad (Year 2)' becomes 'ks1-ipad-year-2'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")
