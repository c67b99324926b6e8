from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from werkzeug.datastructures import Headers

from bridge.errors import ConfigError, SignatureInvalid
from bridge.signatures import SignatureSpec, verify

SECRET = "s3cr3t-value-that-must-not-leak"
OTHER = "another-s3cr3t-value"
BODY = b'{"action": "opened", "number": 7}'
NOW = 1_700_000_000
STD_KEY = b"0123456789abcdef0123456789abcdef"
STD_SECRET = "whsec_" + base64.b64encode(STD_KEY).decode()


def spec(**raw) -> SignatureSpec:
    raw.setdefault("secret", SECRET)
    return SignatureSpec.from_mapping(raw, "plugins.settings.hook.signature")


def hex_mac(secret: str | bytes, message: bytes, digest=hashlib.sha256) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, digest).hexdigest()


def b64_mac(key: bytes, message: bytes, digest=hashlib.sha256) -> str:
    return base64.b64encode(hmac.new(key, message, digest).digest()).decode()


def github(secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hex_mac(secret, body)}


def stripe(secret: str = SECRET, body: bytes = BODY, t: int = NOW) -> dict[str, str]:
    sig = hex_mac(secret, f"{t}.".encode() + body)
    return {"Stripe-Signature": f"t={t},v1={sig},v0=deadbeef"}


def standard(
    key: bytes = STD_KEY, body: bytes = BODY, t: int | str = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    sig = b64_mac(key, f"{msg_id}.{t}.".encode() + body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(t), "webhook-signature": f"v1,{sig}"}


def rejected(s: SignatureSpec, headers, body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(SignatureInvalid) as err:
        verify(s, headers, body, now=now)
    assert SECRET not in str(err.value)
    return err.value.reason


def config_error(**raw) -> str:
    with pytest.raises(ConfigError) as err:
        spec(**raw)
    message = str(err.value)
    assert "\n" not in message and SECRET not in message and SECRET not in repr(err.value.value)
    return message


def test_published_vectors():
    """GitHub's documented example and the Standard Webhooks spec's test vector."""
    gh = spec(type="github", secret="It's a Secret to Everybody")
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify(gh, {"X-Hub-Signature-256": sig}, b"Hello, World!")
    std = spec(type="standard", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    verify(std, headers, b'{"test": 2432232314}', now=1614265330)
    assert (
        rejected(std, headers, b'{"test": 2432232315}', now=1614265330)
        == "signature does not match"
    )


@pytest.mark.parametrize("family", ["webhook", "svix"])
def test_standard_accepts_what_the_standardwebhooks_library_signs(family):
    """Svix's SDK signs with this library and sends svix-* headers unless the account
    brands them as webhook-*; the bridge must accept either spelling."""
    msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    body = b'{"type": "invoice.paid", "data": {"id": "in_1"}}'
    signed = Webhook(STD_SECRET).sign(msg_id, datetime.fromtimestamp(NOW, UTC), body.decode())
    headers = {
        f"{family}-id": msg_id,
        f"{family}-timestamp": str(NOW),
        f"{family}-signature": signed,
    }
    s = spec(type="standard", secret=STD_SECRET)
    verify(s, headers, body, now=NOW)
    verify(s, Headers({k.title(): v for k, v in headers.items()}), body, now=NOW)
    assert rejected(s, headers, body.replace(b"in_1", b"in_2")) == "signature does not match"
    assert rejected(s, {**headers, f"{family}-id": "msg_other"}, body) == (
        "signature does not match"
    )
    assert rejected(s, headers, body, now=NOW + 301) == (
        "timestamp too old: outside the 300s tolerance"
    )
    for name in headers:
        if not name.endswith("-signature"):
            partial = {k: v for k, v in headers.items() if k != name}
            assert rejected(s, partial, body) == f"missing {name} header"
    garbled = {**headers, f"{family}-signature": "v2,abc"}
    assert rejected(s, garbled, body) == (
        f"malformed {family}-signature header: no v1,<base64> signature"
    )


def test_standard_headers_come_from_one_family():
    """webhook-* wins when both are sent, so a stray svix-id cannot replace the signed id."""
    s = spec(type="standard", secret=STD_SECRET)
    both = {**standard(), "svix-id": "msg_other", "svix-signature": "v1,AAAA"}
    verify(s, both, BODY, now=NOW)
    mixed = {"svix-id": "msg_1", "svix-signature": standard()["webhook-signature"]}
    mixed["webhook-timestamp"] = str(NOW)
    assert rejected(s, mixed) == "missing svix-timestamp header"


@pytest.mark.parametrize(
    "kind,headers",
    [
        ("github", github()),
        ("stripe", stripe()),
        ("standard", standard()),
        ("hmac-sha256", {"X-Signature": hex_mac(SECRET, BODY)}),
        ("hmac-sha1", {"X-Signature": hex_mac(SECRET, BODY, hashlib.sha1)}),
    ],
)
def test_valid_signature_passes_and_tampering_fails(kind, headers):
    secret = STD_SECRET if kind == "standard" else SECRET
    s = spec(type=kind, secret=secret, **({"header": "X-Signature"} if "hmac" in kind else {}))
    verify(s, headers, BODY, now=NOW)
    verify(s, Headers({k.lower(): v for k, v in headers.items()}), BODY, now=NOW)
    verify(s, {k.upper(): v for k, v in headers.items()}, BODY, now=NOW)
    flipped = bytes([BODY[0] ^ 1]) + BODY[1:]
    assert rejected(s, headers, flipped) == "signature does not match"
    wrong = spec(
        type=kind, secret=OTHER if kind != "standard" else "whsec_" + "A" * 44, header=s.header
    )
    assert rejected(wrong, headers) == "signature does not match"


@pytest.mark.parametrize(
    "kind,missing",
    [
        ("github", "X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature"),
        ("standard", "webhook-id"),
        ("standard", "webhook-timestamp"),
        ("standard", "webhook-signature"),
        ("hmac-sha1", "X-Sig"),
    ],
)
def test_missing_header_is_named(kind, missing):
    headers = {k: v for k, v in standard().items() if k != missing}
    s = spec(type=kind, secret=STD_SECRET, header="X-Sig" if "hmac" in kind else None)
    assert rejected(s, headers) == f"missing {missing} header"


@pytest.mark.parametrize(
    "kind,headers,reason",
    [
        ("github", {"X-Hub-Signature-256": hex_mac(SECRET, BODY)}, "expected sha256=<hex>"),
        ("github", {"X-Hub-Signature-256": "sha256=zz"}, "expected sha256=<hex>"),
        (
            "github",
            {"X-Hub-Signature-256": "sha1=" + hex_mac(SECRET, BODY, hashlib.sha1)},
            "expected sha256=<hex>",
        ),
        ("stripe", {"Stripe-Signature": "garbage"}, "expected t=...,v1=..."),
        ("stripe", {"Stripe-Signature": "v1=abcd"}, "expected one t= timestamp"),
        ("stripe", {"Stripe-Signature": f"t={NOW},v0=abcd"}, "no v1 signature"),
        ("stripe", {"Stripe-Signature": "t=17e8,v1=abcd"}, "timestamp is not a whole number"),
        ("stripe", {"Stripe-Signature": f"t={NOW}.5,v1=abcd"}, "timestamp is not a whole number"),
        ("standard", {**standard(), "webhook-signature": "v2,abc"}, "no v1,<base64> signature"),
        ("standard", standard(t="soon"), "timestamp is not a whole number"),
        ("hmac-sha256", {"X-Sig": "not-hex"}, "expected the hex HMAC-SHA256 of the body"),
        (
            "hmac-sha256",
            {"X-Sig": hex_mac(SECRET, BODY, hashlib.sha1)},
            "expected the hex HMAC-SHA256 of the body",
        ),
        ("hmac-sha1", {"X-Sig": "é" * 40}, "expected the hex HMAC-SHA1 of the body"),
    ],
)
def test_malformed_header_says_what_was_expected(kind, headers, reason):
    s = spec(type=kind, secret=STD_SECRET, header="X-Sig" if "hmac" in kind else None)
    got = rejected(s, headers)
    assert got.startswith("malformed ") and got.endswith(reason)


@pytest.mark.parametrize("kind", ["stripe", "standard"])
def test_stale_and_future_timestamps_are_rejected(kind):
    s = spec(type=kind, secret=STD_SECRET if kind == "standard" else SECRET)
    make = stripe if kind == "stripe" else standard
    stale, future = make(t=NOW - 301), make(t=NOW + 301)
    assert rejected(s, stale) == "timestamp too old: outside the 300s tolerance"
    assert rejected(s, future).startswith("timestamp in the future: outside the 300s tolerance")
    huge = make(t="9" * 5000)  # more digits than int() takes
    assert rejected(s, huge).startswith("timestamp in the future: outside the 300s tolerance")
    verify(s, make(t=NOW - 300), BODY, now=NOW)
    wide = spec(type=kind, secret=s.secrets[0], tolerance="10m")
    assert wide.tolerance == 600
    verify(wide, stale, BODY, now=NOW)


def test_default_now_reads_the_bridge_clock(frozen_clock):
    s = spec(type="stripe")
    frozen_clock.set(datetime.fromtimestamp(NOW, UTC))
    verify(s, stripe(), BODY)
    frozen_clock.advance(3600)
    with pytest.raises(SignatureInvalid, match="too old"):
        verify(s, stripe(), BODY)


def test_key_rotation_accepts_any_configured_secret():
    for kind, make in (("github", github), ("stripe", stripe)):
        s = spec(type=kind, secret=[OTHER, SECRET])
        assert s.secrets == (OTHER, SECRET)
        verify(s, make(SECRET), BODY, now=NOW)
        verify(s, make(OTHER), BODY, now=NOW)
    both = stripe(OTHER)["Stripe-Signature"] + ",v1=" + hex_mac(SECRET, f"{NOW}.".encode() + BODY)
    verify(spec(type="stripe"), {"Stripe-Signature": both}, BODY, now=NOW)
    new_key = b"fedcba9876543210fedcba9876543210"
    s = spec(type="standard", secret="whsec_" + base64.b64encode(new_key).decode())
    headers = standard()
    headers["webhook-signature"] += " v2,ignored " + standard(new_key)["webhook-signature"]
    verify(s, headers, BODY, now=NOW)
    assert (
        rejected(spec(type="standard", secret=STD_SECRET), headers, BODY[:-1])
        == "signature does not match"
    )


def test_standard_secret_without_prefix_is_base64():
    s = spec(type="standard", secret=base64.b64encode(STD_KEY).decode())
    verify(s, standard(), BODY, now=NOW)


def test_generic_hmac_encodings_and_prefix():
    key = SECRET.encode()
    b64 = b64_mac(key, BODY)
    verify(spec(type="hmac-sha256", header="X-Sig", encoding="base64"), {"X-Sig": b64}, BODY)
    s = spec(type="hmac-sha256", header="X-Sig", prefix="sha256=")
    verify(s, {"x-sig": "sha256=" + hex_mac(SECRET, BODY)}, BODY)
    verify(s, {"x-sig": hex_mac(SECRET, BODY).upper()}, BODY)
    sha1 = spec(type="hmac-sha1", header="X-Sig", encoding="base64", prefix="sha1=")
    verify(sha1, {"X-Sig": "sha1=" + b64_mac(key, BODY, hashlib.sha1)}, BODY)
    assert (
        rejected(sha1, {"X-Sig": "sha1=" + b64_mac(key, BODY + b"!", hashlib.sha1)})
        == "signature does not match"
    )
    assert rejected(spec(type="hmac-sha256", header="X-Sig"), {"X-Sig": b64}).endswith(
        "expected the hex HMAC-SHA256 of the body"
    )


def test_env_secret_is_resolved_from_environ():
    raw = {"type": "github", "secret": ["env:GH_NEW", "env:GH_OLD"]}
    s = SignatureSpec.from_mapping(raw, "sig", environ={"GH_NEW": SECRET, "GH_OLD": OTHER})
    assert s.secrets == (SECRET, OTHER) and s.header == "X-Hub-Signature-256"
    verify(s, github(OTHER), BODY)
    with pytest.raises(ConfigError) as err:
        SignatureSpec.from_mapping(raw, "sig", environ={"GH_NEW": SECRET, "GH_OLD": ""})
    assert str(err.value) == "sig.secret[1]: unset or empty environment variable 'GH_OLD'"
    assert SECRET not in str(err.value)


def test_env_secret_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("BRIDGE_TEST_SIG_SECRET", SECRET)
    s = SignatureSpec.from_mapping(
        {"type": "github", "secret": "env:BRIDGE_TEST_SIG_SECRET"}, "sig"
    )
    assert s.secrets == (SECRET,)


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"type": "gitlab"}, ".type: expected one of github, stripe, standard"),
        ({"type": None}, ".type: expected one of"),
        ({"type": "github", "secret": None}, ".secret: required"),
        ({"type": "github", "secret": []}, ".secret: expected at least one secret"),
        ({"type": "github", "secret": ""}, ".secret: empty secret"),
        ({"type": "github", "secret": [SECRET, 12345]}, ".secret[1]: expected a string"),
        ({"type": "standard"}, ".secret: not whsec_<base64>"),
        (
            {"type": "standard", "secret": [STD_SECRET, "whsec_" + SECRET]},
            ".secret[1]: not whsec_<base64>",
        ),
        ({"type": "github", "secrets": SECRET}, ".secrets: unknown key"),
        ({"type": "hmac-sha256"}, ".header: required for hmac-sha256"),
        ({"type": "hmac-sha1", "header": "  "}, ".header: expected a header name"),
        ({"type": "hmac-sha1", "header": "X", "encoding": "base32"}, ".encoding: expected hex or"),
        ({"type": "github", "encoding": "base64"}, ".encoding: not used by type github"),
        ({"type": "hmac-sha1", "header": "X", "tolerance": 60}, ".tolerance: not used by type"),
        ({"type": "stripe", "tolerance": "soon"}, ".tolerance: invalid duration 'soon'"),
        ({"type": "stripe", "tolerance": 0}, ".tolerance: must be > 0"),
        ({"type": "hmac-sha1", "header": "X", "prefix": 1}, ".prefix: expected a string"),
    ],
)
def test_config_error_names_the_key_never_the_secret(raw, key):
    raw.setdefault("secret", SECRET)
    assert config_error(**raw).startswith("plugins.settings.hook.signature" + key)


def test_not_a_mapping():
    with pytest.raises(ConfigError) as err:
        SignatureSpec.from_mapping(SECRET, "sig")
    assert str(err.value) == "sig: expected a mapping, got 'str'"


def test_standard_ignores_header_and_defaults_apply():
    s = spec(type="standard", secret=STD_SECRET, header="X-Other")
    assert s.header == "webhook-signature" and s.tolerance == 300.0
    assert STD_SECRET not in repr(s)
    assert spec(type="stripe").header == "Stripe-Signature"
    assert spec(type="hmac-sha1", header="X-Sig").encoding == "hex"
