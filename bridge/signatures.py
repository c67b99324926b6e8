"""Webhook signatures: check that the raw body was signed by the sender with a shared secret.

One `SignatureSpec` per plugin, validated once from config; `verify()` runs on every
delivery before the body is parsed. Secrets never appear in errors: reasons name the
header and what is wrong with it, config errors name the key (or the env variable).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bridge import clock
from bridge.config import parse_duration, resolve_env
from bridge.errors import ConfigError, SignatureInvalid

TYPES = ("github", "stripe", "standard", "hmac-sha256", "hmac-sha1")
ENCODINGS = ("hex", "base64")
KEYS = ("type", "secret", "header", "encoding", "tolerance", "prefix")
DEFAULT_HEADERS = {
    "github": "X-Hub-Signature-256",
    "stripe": "Stripe-Signature",
    "standard": "webhook-signature",
}
_GENERIC = {"hmac-sha256": hashlib.sha256, "hmac-sha1": hashlib.sha1}
_TIMESTAMPED = ("stripe", "standard")
# Keys that only mean something for some types: set elsewhere they would be silently ignored.
_ONLY_FOR = {"encoding": tuple(_GENERIC), "prefix": tuple(_GENERIC), "tolerance": _TIMESTAMPED}


@dataclass(frozen=True)
class SignatureSpec:
    """How one plugin's deliveries are signed; `secrets` holds several during a key rotation."""

    type: str
    secrets: tuple[str, ...] = field(repr=False)  # kept out of logs and tracebacks
    header: str
    encoding: str = "hex"
    tolerance: float = 300.0
    prefix: str = ""

    @classmethod
    def from_mapping(
        cls, raw: object, where: str, environ: Mapping[str, str] | None = None
    ) -> SignatureSpec:
        """Validate config once, so a typo stops start-up instead of rejecting every delivery."""
        if not isinstance(raw, Mapping):
            raise ConfigError(where, type(raw).__name__, "expected a mapping, got")
        for key in raw:
            if key not in KEYS:
                raise ConfigError(
                    f"{where}.{key}", str(key), f"unknown key (expected {', '.join(KEYS)}), got"
                )
        kind = raw.get("type")
        if kind not in TYPES:
            raise ConfigError(f"{where}.type", kind, f"expected one of {', '.join(TYPES)}, got")
        for key, types in _ONLY_FOR.items():
            if raw.get(key) is not None and kind not in types:
                raise ConfigError(
                    f"{where}.{key}",
                    raw[key],
                    f"not used by type {kind} (only by {', '.join(types)}):",
                )
        secrets = _secrets(
            raw.get("secret"), f"{where}.secret", os.environ if environ is None else environ
        )
        if kind == "standard":
            for i, secret in enumerate(secrets):
                if _standard_key(secret) is None:
                    key = f"{where}.secret" + (f"[{i}]" if len(secrets) > 1 else "")
                    raise ConfigError(key, "***", "not whsec_<base64> as Standard Webhooks issues")
        # Standard Webhooks fixes its header names (webhook-* or svix-*), so `header` is ignored.
        header = None if kind == "standard" else raw.get("header")
        if header is None:
            if kind in _GENERIC:
                raise ConfigError(
                    f"{where}.header",
                    None,
                    f"required for {kind} (the header carrying the signature), got",
                )
            header = DEFAULT_HEADERS[kind]
        if not isinstance(header, str) or not header.strip():
            raise ConfigError(f"{where}.header", header, "expected a header name, got")
        encoding = raw.get("encoding") or "hex"
        if encoding not in ENCODINGS:
            raise ConfigError(f"{where}.encoding", encoding, "expected hex or base64, got")
        tolerance = raw.get("tolerance")
        if tolerance is None:
            tolerance = 300.0
        else:
            try:
                tolerance = parse_duration(tolerance)
            except ValueError:
                raise ConfigError(f"{where}.tolerance", tolerance, "invalid duration") from None
            if tolerance <= 0:
                raise ConfigError(f"{where}.tolerance", raw["tolerance"], "must be > 0, got")
        prefix = raw.get("prefix") or ""
        if not isinstance(prefix, str):
            raise ConfigError(f"{where}.prefix", prefix, "expected a string, got")
        return cls(kind, secrets, header.strip(), encoding, tolerance, prefix)


def _secrets(value: object, key: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Resolve `env:NAME` entries; errors show '***' or the variable name, never a secret."""
    if value is None:
        raise ConfigError(key, None, "required (a string, env:NAME, or a list of them), got")
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ConfigError(key, [], "expected at least one secret, got")
    resolved = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list | tuple) else key
        if not isinstance(item, str):
            raise ConfigError(where, "***", "expected a string (quote it in YAML), got")
        item = resolve_env(item, where, environ)
        if not item:
            raise ConfigError(where, "", "empty secret")
        resolved.append(item)
    return tuple(resolved)


def _standard_key(secret: str) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional `whsec_`."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def _lookup(headers: Mapping[str, str], name: str) -> str:
    """The header's stripped value, '' if absent; case-insensitive even in a plain dict."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return (value or "").strip()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = _lookup(headers, name)
    if not value:
        raise SignatureInvalid(f"missing {name} header")
    return value


def _decode(text: str, encoding: str) -> bytes | None:
    """Signature bytes from hex or base64 text; None when it is neither."""
    try:
        if encoding == "hex":
            return bytes.fromhex(text) if text.isascii() else None
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _matches(
    keys: list[bytes],
    message: bytes,
    candidates: list[bytes],
    digest: Callable[..., object] = hashlib.sha256,
) -> bool:
    """True if any candidate is the HMAC of `message` under any key (every pair is compared)."""
    found = False
    for key in keys:
        expected = hmac.new(key, message, digest).digest()
        for candidate in candidates:
            found |= hmac.compare_digest(expected, candidate)
    return found


def _check_timestamp(text: str, header: str, tolerance: float, now: float) -> int:
    if not (text.isascii() and text.isdigit()):
        raise SignatureInvalid(f"malformed {header} header: the timestamp is not a whole number")
    digits = text.lstrip("0")
    if len(digits) > 20:  # far outside any tolerance; int() refuses 4,300 digits and more
        raise SignatureInvalid(f"timestamp in the future: outside the {tolerance:g}s tolerance")
    stamp = int(digits or "0")
    if now - stamp > tolerance:
        raise SignatureInvalid(f"timestamp too old: outside the {tolerance:g}s tolerance")
    if stamp - now > tolerance:
        raise SignatureInvalid(
            f"timestamp in the future: outside the {tolerance:g}s tolerance"
            " (check the sender's clock)"
        )
    return stamp


def _verify_github(
    spec: SignatureSpec, headers: Mapping[str, str], body: bytes, now: float
) -> bool:
    value = _header(headers, spec.header)
    signature = _decode(value[7:], "hex") if value.startswith("sha256=") else None
    if signature is None or len(signature) != hashlib.sha256().digest_size:
        raise SignatureInvalid(f"malformed {spec.header} header: expected sha256=<hex>")
    return _matches([s.encode() for s in spec.secrets], body, [signature])


def _verify_stripe(
    spec: SignatureSpec, headers: Mapping[str, str], body: bytes, now: float
) -> bool:
    value = _header(headers, spec.header)
    pairs = [item.strip().partition("=") for item in value.split(",")]
    if any(not sep for _, sep, _ in pairs):
        raise SignatureInvalid(f"malformed {spec.header} header: expected t=...,v1=...")
    stamps = [v for k, _, v in pairs if k == "t"]
    if len(stamps) != 1:
        raise SignatureInvalid(f"malformed {spec.header} header: expected one t= timestamp")
    signatures = [_decode(v, "hex") for k, _, v in pairs if k == "v1"]
    if not signatures:
        raise SignatureInvalid(f"malformed {spec.header} header: no v1 signature")
    _check_timestamp(stamps[0], spec.header, spec.tolerance, now)
    message = stamps[0].encode() + b"." + body
    return _matches(
        [s.encode() for s in spec.secrets], message, [s for s in signatures if s is not None]
    )


def _standard_family(headers: Mapping[str, str]) -> str:
    """`webhook` or `svix`: Svix sends `svix-*` headers unless the account brands them.

    The three headers come from one family, the one whose signature header is present
    (`webhook-*` first), so a missing header is named as the sender spells it.
    """
    if not _lookup(headers, "webhook-signature") and _lookup(headers, "svix-signature"):
        return "svix"
    return "webhook"


def _verify_standard(
    spec: SignatureSpec, headers: Mapping[str, str], body: bytes, now: float
) -> bool:
    family = _standard_family(headers)
    msg_id = _header(headers, f"{family}-id")
    stamp = _header(headers, f"{family}-timestamp")
    value = _header(headers, f"{family}-signature")
    versioned = [item.partition(",") for item in value.split()]
    signatures = [_decode(sig, "base64") for version, _, sig in versioned if version == "v1"]
    if not signatures:
        raise SignatureInvalid(f"malformed {family}-signature header: no v1,<base64> signature")
    _check_timestamp(stamp, f"{family}-timestamp", spec.tolerance, now)
    keys = [k for k in map(_standard_key, spec.secrets) if k is not None]
    message = f"{msg_id}.{stamp}.".encode() + body
    return _matches(keys, message, [s for s in signatures if s is not None])


def _verify_generic(
    spec: SignatureSpec, headers: Mapping[str, str], body: bytes, now: float
) -> bool:
    value = _header(headers, spec.header)
    if spec.prefix:
        value = value.removeprefix(spec.prefix)
    digest = _GENERIC[spec.type]
    signature = _decode(value, spec.encoding)
    if signature is None or len(signature) != digest().digest_size:
        raise SignatureInvalid(
            f"malformed {spec.header} header: expected the {spec.encoding} "
            f"{spec.type.upper()} of the body"
        )
    return _matches([s.encode() for s in spec.secrets], body, [signature], digest)


_VERIFIERS = {
    "github": _verify_github,
    "stripe": _verify_stripe,
    "standard": _verify_standard,
    "hmac-sha256": _verify_generic,
    "hmac-sha1": _verify_generic,
}


def verify(
    spec: SignatureSpec, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Raise SignatureInvalid unless `body` is signed with one of the spec's secrets."""
    current = clock.utcnow().timestamp() if now is None else now
    if not _VERIFIERS[spec.type](spec, headers, body, current):
        raise SignatureInvalid("signature does not match")


def signed_identity(spec: SignatureSpec, headers: Mapping[str, str], data: Mapping) -> str | None:
    """The delivery id that the sender's signature vouches for, as the idempotency key:
    Standard Webhooks' `webhook-id` (or `svix-id`, signed with the body), Stripe's event
    id (in the signed body), GitHub's `X-GitHub-Delivery`. None for the generic HMAC
    types, which sign no id: their idempotency headers are read as for any plugin."""
    if spec.type == "standard":
        return _lookup(headers, f"{_standard_family(headers)}-id")
    if spec.type == "stripe":
        event_id = data.get("id")
        return event_id if isinstance(event_id, str) else ""
    if spec.type == "github":
        return _lookup(headers, "X-GitHub-Delivery")
    return None
