"""Masking of credentials and personal data in free text.

Two entry points:

- :func:`redact` masks personal data *and* credentials. It is what ``content="redact"``
  stores.
- :func:`scrub_secrets` masks credentials only. It is meant for text that is kept in every
  content mode (provider error messages and the like), so it is deliberately conservative.

Each match is replaced by a typed placeholder (``[EMAIL]``, ``[API_KEY]``, ...) and the
text around it is kept: ``password=[PASSWORD]``, ``Bearer [TOKEN]``,
``https://user:[PASSWORD]@host``. When nothing matches, the input object itself is
returned.

Speed matters because this runs on the call path. Every rule is either a regular
expression that starts with a literal (so the engine jumps between candidate positions
with a fast substring search), one character class scan for numbers, or a keyword looked
up with ``str.find`` in the lower-cased text and matched only there. Quantifiers are
possessive or bounded, and matches that can only start at the beginning of a token say so
with a look-behind, so the work stays linear in the length of the text.

Checks that a regular expression cannot do are done in Python on the few candidates:
the Luhn checksum of card numbers, the ISO 13616 checksum and length of IBANs, the digit
count of phone numbers, the octets of IPv4 addresses, and that a ``Basic`` credential is
base64 of ``user:password``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Final

__all__ = [
    "API_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET",
    "CARD_NUMBER",
    "EMAIL",
    "IBAN",
    "IP_ADDRESS",
    "JWT",
    "PASSWORD",
    "PHONE",
    "PLACEHOLDERS",
    "PRIVATE_KEY",
    "SECRET",
    "SSN",
    "TOKEN",
    "redact",
    "scrub_secrets",
]

# -- placeholders ------------------------------------------------------------------------

API_KEY: Final = "[API_KEY]"  # OpenAI/Anthropic-style sk-..., Stripe, Google AIza..., Groq
AWS_ACCESS_KEY: Final = "[AWS_ACCESS_KEY]"  # AKIA.../ASIA... access key ids
AWS_SECRET: Final = "[AWS_SECRET]"  # noqa: S105 - 40-character AWS secret access keys
TOKEN: Final = "[TOKEN]"  # noqa: S105 - Bearer/Basic, GitHub, GitLab, Slack, Hugging Face
JWT: Final = "[JWT]"  # JSON web tokens outside an auth header
PASSWORD: Final = "[PASSWORD]"  # noqa: S105 - password=..., passwords in URLs
SECRET: Final = "[SECRET]"  # noqa: S105 - other values labelled secret/token/api key
PRIVATE_KEY: Final = "[PRIVATE_KEY]"  # PEM private key blocks
EMAIL: Final = "[EMAIL]"
PHONE: Final = "[PHONE]"
CARD_NUMBER: Final = "[CARD_NUMBER]"
IBAN: Final = "[IBAN]"
SSN: Final = "[SSN]"  # US social security numbers written 123-45-6789
IP_ADDRESS: Final = "[IP_ADDRESS]"  # IPv4 addresses (see _ip for what is left alone)

#: Every placeholder either function can produce.
PLACEHOLDERS: Final = (
    API_KEY,
    AWS_ACCESS_KEY,
    AWS_SECRET,
    TOKEN,
    JWT,
    PASSWORD,
    SECRET,
    PRIVATE_KEY,
    EMAIL,
    PHONE,
    CARD_NUMBER,
    IBAN,
    SSN,
    IP_ADDRESS,
)

_Edit = tuple[int, int, str]  # replace text[start:end] with the string
_Handler = Callable[[re.Match[str]], _Edit | None]


# -- the two kinds of rule ---------------------------------------------------------------


class _RegexRule:
    """A pattern searched over the whole text; ``handler`` turns a match into an edit.

    ``gate``, if given, holds characters the pattern cannot match without any of: a text
    with none of them is not scanned (a one-character ``in`` test costs a fraction of a
    scan).
    """

    __slots__ = ("gate", "handler", "pattern")

    def __init__(self, pattern: re.Pattern[str], handler: _Handler, gate: str = "") -> None:
        self.pattern = pattern
        self.handler = handler
        self.gate = gate

    def edits(self, text: str, lower: str | None) -> list[_Edit]:
        if self.gate and not _has_any(text, self.gate):
            return []
        search, handler = self.pattern.search, self.handler
        out: list[_Edit] = []
        done = 0
        match = search(text)
        while match is not None:
            edit = handler(match)
            if edit is not None and edit[0] >= done:
                out.append(edit)
                done = max(edit[1], match.end())
            # after a rejected candidate (a bad checksum, say) the search goes on after it,
            # as finditer would: looking inside it again would make hostile input slow
            match = search(text, max(done, match.end()))
        return out


class _KeywordRule:
    """A case-insensitive keyword found with ``str.find``, then matched where it occurs.

    ``pattern`` must start with the keyword; it is only tried where one of ``triggers``
    occurs, at the start of a word or of a camelCase part (``db_password``, ``x-api-key``
    and ``clientSecret`` qualify, ``bypass`` does not). ``gate`` as for :class:`_RegexRule`.
    """

    __slots__ = ("fallbacks", "gate", "handler", "pattern", "triggers")

    def __init__(
        self,
        triggers: Sequence[str],
        pattern: re.Pattern[str],
        handler: _Handler,
        gate: str = "",
    ) -> None:
        self.triggers = tuple(triggers)
        self.pattern = pattern
        self.handler = handler
        self.gate = gate
        self.fallbacks = tuple(re.compile(re.escape(t), re.IGNORECASE) for t in self.triggers)

    def _positions(self, text: str, lower: str | None) -> list[int]:
        found: list[int] = []
        if lower is not None:
            for trigger in self.triggers:
                at = lower.find(trigger)
                while at >= 0:
                    found.append(at)
                    at = lower.find(trigger, at + 1)
        else:  # lower-casing changed the length (rare non-ASCII letters): use regexes
            for fallback in self.fallbacks:
                found.extend(m.start() for m in fallback.finditer(text))
        if len(self.triggers) > 1:
            found.sort()
        return found

    def edits(self, text: str, lower: str | None) -> list[_Edit]:
        if self.gate and not _has_any(text, self.gate):
            return []
        if lower is not None and all(t not in lower for t in self.triggers):
            return []  # the common case, decided without building a list
        out: list[_Edit] = []
        done = 0
        for at in self._positions(text, lower):
            if at < done or not _starts_word(text, at):
                continue
            match = self.pattern.match(text, at)
            if match is None:
                continue
            edit = self.handler(match)
            if edit is not None:
                out.append(edit)
                done = match.end()
        return out


_Rule = _RegexRule | _KeywordRule


def _has_any(text: str, chars: str) -> bool:
    return any(char in text for char in chars)


def _starts_word(text: str, at: int) -> bool:
    if at == 0:
        return True
    before = text[at - 1]
    if not before.isalnum():
        return True
    return before.islower() and text[at].isupper()  # camelCase: clientSecret, dbPassword


def _lower(text: str) -> str | None:
    """``text`` lower-cased if that keeps every index (it does unless e.g. "İ" occurs)."""
    lower = text.lower()
    return lower if len(lower) == len(text) else None


def _apply(text: str, rules: Sequence[_Rule]) -> str:
    lower = _lower(text)
    for rule in rules:
        edits = rule.edits(text, lower)
        if edits:
            parts: list[str] = []
            previous = 0
            for start, end, replacement in edits:
                parts.append(text[previous:start])
                parts.append(replacement)
                previous = end
            parts.append(text[previous:])
            text = "".join(parts)
            lower = _lower(text)
    return text


# -- credentials -------------------------------------------------------------------------

# PEM private keys. The body stops at the first "-----" (the END line, or the next
# BEGIN); a key cut off before its END line is masked to the end of the body.
_PEM = re.compile(
    r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"[^-]*+(?:-(?!----)[^-]*+)*+"
    r"(?:-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"
)


def _pem(m: re.Match[str]) -> _Edit:
    return m.start(), m.end(), PRIVATE_KEY


# scheme://user:password@host -> scheme://user:[PASSWORD]@host
# (Templates such as {password} or ${DB_PASSWORD}, and placeholders, are left alone.)
_URL_PASSWORD = re.compile(r"://[^\s:/@?#\[\]\"'<>]*+:(?P<pw>(?![\[{$*%<])[^\s/@?#\"'<>]++)@")


def _url_password(m: re.Match[str]) -> _Edit:
    return m.start("pw"), m.end("pw"), PASSWORD


# AWS access key ids (and a 40-character secret right after one, as in a CSV or an
# `aws configure` transcript) and Google API keys.
_A_KEYS = re.compile(
    r"A(?<![A-Za-z0-9_]A)"
    r"(?:(?P<aws>(?:KIA|SIA)[A-Z0-9]{16})(?![A-Za-z0-9])"
    r"(?:[ \t,;:|=\"']{1,4}+(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=]))?"
    r"|Iza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-]))"
)


def _a_keys(m: re.Match[str]) -> _Edit:
    if m["aws"] is None:
        return m.start(), m.end(), API_KEY
    if m["secret"] is None:
        return m.start(), m.end(), AWS_ACCESS_KEY
    text = m.string
    middle = text[m.end("aws") : m.start("secret")]
    return m.start(), m.end(), AWS_ACCESS_KEY + middle + AWS_SECRET


# GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), GitLab (glpat-), Groq (gsk_).
_G_TOKENS = re.compile(
    r"g(?<![A-Za-z0-9_-]g)"
    r"(?:h[pousr]_[A-Za-z0-9]{20,}+|ithub_pat_[A-Za-z0-9_]{22,}+"
    r"|lpat-[A-Za-z0-9_-]{20,}+|sk_[A-Za-z0-9]{20,}+)"
    r"(?![A-Za-z0-9_-])"
)


def _g_tokens(m: re.Match[str]) -> _Edit:
    return m.start(), m.end(), API_KEY if m.group().startswith("gsk_") else TOKEN


# Hugging Face access tokens.
_HF = re.compile(r"hf_(?<![A-Za-z0-9_-]hf_)[A-Za-z0-9]{30,}+(?![A-Za-z0-9_-])")
# Slack tokens: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxo-.
_SLACK = re.compile(r"xox(?<![A-Za-z0-9_-]xox)[abposr]-[A-Za-z0-9-]{10,}+")


def _token(m: re.Match[str]) -> _Edit:
    return m.start(), m.end(), TOKEN


# sk-/pk-/rk- keys (OpenAI sk-..., sk-proj-..., Anthropic sk-ant-..., Langfuse pk-lf-...)
# and Stripe sk_live_/sk_test_/rk_live_/pk_live_... keys. The match starts at the "k"
# (a literal, so the scan is fast) and the edit reaches back one character.
_K_KEYS = re.compile(
    r"k(?<=[spr]k)(?<![A-Za-z0-9_-][spr]k)"
    r"(?:_(?:live|test)_[A-Za-z0-9]{8,}+(?P<stripe>)|-(?P<dash>[A-Za-z0-9_-]{6,}+))"
)


def _k_keys(m: re.Match[str]) -> _Edit | None:
    dash = m["dash"]
    if dash is not None and len(dash) < 20 and not _HAS_DIGIT.search(dash):
        return None  # sk-something-else: a word, not a key
    return m.start() - 1, m.end(), API_KEY


_HAS_DIGIT = re.compile(r"[0-9]")

# JSON web tokens: header.payload.signature, the header being base64url of '{"...'.
_JWT = re.compile(
    r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"
)


def _jwt(m: re.Match[str]) -> _Edit:
    return m.start(), m.end(), JWT


# "Bearer <token>": the token must look like one (a digit, or 24+ characters), so that
# "the bearer instrument" is left alone.
_BEARER = re.compile(r"bearer[ \t]+(?P<v>[A-Za-z0-9._~+/_-]{8,}+=*)", re.I)


def _bearer(m: re.Match[str]) -> _Edit | None:
    value = m["v"]
    if len(value) < 24 and not _HAS_DIGIT.search(value):
        return None
    return m.start("v"), m.end("v"), TOKEN


# "Basic <base64 of user:password>": decoded to check, "Basic settings" stays.
_BASIC = re.compile(r"basic[ \t]+(?P<v>[A-Za-z0-9+/]{4,}+={0,2})(?![A-Za-z0-9+/=])", re.I)


def _basic(m: re.Match[str]) -> _Edit | None:
    value = m["v"]
    if len(value) % 4:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in decoded or not decoded.isprintable():
        return None
    return m.start("v"), m.end("v"), TOKEN


# A key/value separator: '=', ':' or '": "' (also with JSON-escaped quotes: \": \").
_SEP = r"""\\?["']?[ \t]*[:=](?!=)[ \t]*\\?["']?"""  # not "==" (a comparison)
# A password value: quoted (spaces allowed) or bare (up to a space, quote or delimiter).
# Values that already are a placeholder, a template (${X}, {x}, <x>) or stars are skipped.
# A bare "pass" is not a keyword: {"pass": true} is an eval result, not a credential.
_PASSWORD = re.compile(
    r"(?:password|passwd|passphrase|pwd)"
    r"(?:" + _SEP + r"(?:"
    r"(?<=\")(?P<dq>(?![\[<{$*%])[^\"\\\r\n]++)(?=\\?\")"
    r"|(?<=')(?P<sq>(?![\[<{$*%])[^'\r\n]++)(?=')"
    r"|(?<![\"'])(?P<bare>(?![\[<{$*%\\])[^\s\"'&;,<>]++))"
    r"|(?:[ \t]+(?:is|was)[ \t]*:?[ \t]+)(?P<said>(?=\S*[0-9!@#$%^&*_])[^\s\"'<>]{4,64}+)"
    r"|[ \t]+(?P<flag>(?![-\[<{$*%\\])[^\s\"'&;,<>]++)"  # --password VALUE
    r"|(?<=<password)>(?P<xml>[^<\s][^<]*+)</)",
    re.I,
)
# Values that are code or a type, not a credential: os.environ["X"], settings.DB_PASSWORD,
# getpass(), "password: str", "password=None". (Dotted names without digits only: tokens
# such as ya29.a0AfH6 have digits.)
_CODE_LIKE = re.compile(
    r"[A-Za-z_]++(?:\.[A-Za-z_]++)+|.*[()\[\]{}].*"
    r"|(?i:str|string|int|bytes|bool|none|null|nil|true|false|undefined|optional|secretstr)"
)


def _password(m: re.Match[str]) -> _Edit | None:
    text = m.string
    if m["flag"] is not None and text[m.start() - 2 : m.start()] != "--":
        return None  # "password must ..." is prose; only "--password VALUE" is a flag
    for name in ("dq", "sq", "xml"):
        if m[name] is not None:
            return m.start(name), m.end(name), PASSWORD
    name = next(n for n in ("bare", "said", "flag") if m[n] is not None)
    start, end = m.start(name), m.end(name)
    while end - start > 1 and text[end - 1] in ".,)":  # a full stop or bracket after it
        end -= 1
    value = text[start:end]
    if name != "said" and _CODE_LIKE.fullmatch(value):
        return None
    if (
        name == "bare"
        and value.isalpha()
        and "=" not in text[m.start() : start]  # "key: value", not "key=value"
        and _PROSE_AFTER.match(text, m.end(name))
    ):
        return None  # "passwd: No such user", "Password: must be 8 characters"
    return start, end, PASSWORD


_PROSE_AFTER = re.compile(r"[.,]? [A-Za-z]")


# Values labelled secret / token / api key / authorization. A value must look like a
# credential: 8+ characters with a letter and a digit, or 20+ characters. A 40-character
# base64-ish value labelled secret is an AWS secret access key.
_VALUE = r"(?P<v>(?![\[<{$*%])[A-Za-z0-9/+_.~-]{8,}+={0,2})(?![A-Za-z0-9/+_.~=-])"
_SECRET_VALUE = re.compile(
    r"secret(?:[_ -]?access)?(?:[_ -]?key)?"
    r"(?:" + _SEP + r"|[ \t]+(?:is[ \t]+)?)" + _VALUE,
    re.I,
)
_TOKEN_VALUE = re.compile(r"token" + _SEP + _VALUE, re.I)
_API_KEY_VALUE = re.compile(r"api[_-]?key" + _SEP + _VALUE, re.I)
_AUTHORIZATION = re.compile(
    r"authorization" + _SEP + r"(?:[A-Za-z]{2,20}[ \t]+)?" + _VALUE,
    re.I,
)
_AWS_SECRET_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}")
_LETTER = re.compile(r"[A-Za-z]")


def _credential_like(value: str) -> bool:
    if len(value) >= 20:
        return True
    return bool(_HAS_DIGIT.search(value)) and bool(_LETTER.search(value))


def _labelled(placeholder: str) -> _Handler:
    def handler(m: re.Match[str]) -> _Edit | None:
        value = m["v"]
        if not _credential_like(value) or _CODE_LIKE.fullmatch(value):
            return None
        return m.start("v"), m.end("v"), placeholder

    return handler


def _secret(m: re.Match[str]) -> _Edit | None:
    value = m["v"]
    if _AWS_SECRET_SHAPE.fullmatch(value):
        return m.start("v"), m.end("v"), AWS_SECRET
    spoken = not any(c in m.group()[: m.start("v") - m.start()] for c in ":=")
    if spoken or not _credential_like(value) or _CODE_LIKE.fullmatch(value):
        # "the secret is ..." counts only for AWS-shaped values
        return None
    return m.start("v"), m.end("v"), SECRET


_CREDENTIAL_RULES: tuple[_Rule, ...] = (
    _RegexRule(_PEM, _pem),
    _RegexRule(_URL_PASSWORD, _url_password, gate="@"),
    _KeywordRule(("bearer",), _BEARER, _bearer),
    _KeywordRule(("basic",), _BASIC, _basic),
    _RegexRule(_A_KEYS, _a_keys),
    _RegexRule(_G_TOKENS, _g_tokens),
    _RegexRule(_HF, _token),
    _RegexRule(_SLACK, _token),
    _RegexRule(_K_KEYS, _k_keys),
    _RegexRule(_JWT, _jwt),
    _KeywordRule(("pass", "pwd"), _PASSWORD, _password),
    _KeywordRule(("secret",), _SECRET_VALUE, _secret),
    _KeywordRule(("token",), _TOKEN_VALUE, _labelled(TOKEN), gate=":="),
    _KeywordRule(("api",), _API_KEY_VALUE, _labelled(API_KEY), gate=":="),
    _KeywordRule(("authorization",), _AUTHORIZATION, _labelled(TOKEN), gate=":="),
)


# -- personal data -----------------------------------------------------------------------

# E-mail addresses, found from the "@": the domain by the pattern, the local part by
# looking back at most 64 characters (its maximum length).
_EMAIL_DOMAIN = re.compile(r"@(?P<domain>[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)+)")
_LOCAL_PART = re.compile(r"(?<![\w.%+'-])[\w.%+'-]{1,64}+\Z")
_TLD = re.compile(r"[A-Za-z]{2,63}")


def _email(m: re.Match[str]) -> _Edit | None:
    at = m.start()
    domain = m["domain"]
    if not _TLD.fullmatch(domain.rsplit(".", 1)[1]):
        return None
    local = _LOCAL_PART.search(m.string, max(0, at - 64), at)
    if local is None:
        return None
    start = local.start()
    while start < at and m.string[start] in ".'":
        start += 1
    if start == at:
        return None
    return start, m.end(), EMAIL


# Numbers: IBANs, international and national phone numbers, card numbers, SSNs, IPv4.
# One scan over a single character class: a match starts at a digit, "+" or "(" and each
# alternative checks, with a look-behind, what that first character was. Apart from the
# IBAN (which is found from its check digits, right after the country code) a number must
# start a token: it is not preceded by a letter, digit, ".", "+", "/" or "-".
_NUMBER = re.compile(
    r"""
    [0-9+(]
    (?<![a-z0-9_.][0-9])    # quick exit in the middle of a number or a word
    (?:
        (?<=(?<![A-Za-z0-9])[A-Z]{2}[0-9]) [0-9] (?:\ ?[A-Z0-9]){10,32}+  (?P<iban>)
      |
        (?<![\w.+/-][0-9+(])
        (?:
            # +CC ...: 8 to 15 digits in all, checked by the handler
            (?<=\+) (?:[0-9][\ .()-]{0,2}){7,14}[0-9] (?![0-9])  (?P<intl>)
          | # (415) 555-2671
            (?<=\() [0-9]{3}\)\ ?[0-9]{3}[\ .-][0-9]{4}
            (?![0-9A-Za-z_]|[.-][0-9])  (?P<nanp_paren>)
          |
            (?<=[0-9])
            (?:
                # cards: 4-4-4-4(-3) with one kind of separator, 4-6-5 (Amex), 4-6-4
                # (Diners), or 13 to 19 digits in one run; the handler checks Luhn
                (?<=[2-6]) [0-9]{3}
                (?: (?P<cs>[\ .-]?)[0-9]{4}(?P=cs)[0-9]{4}(?P=cs)[0-9]{4}(?:(?P=cs)[0-9]{3})?
                  | [\ -][0-9]{6}[\ -][0-9]{4,5}
                  | [0-9]{9,15} )
                (?![0-9A-Za-z_]|[.,-][0-9])  (?P<card>)
              | # US social security number 123-45-6789
                [0-9]{2}-[0-9]{2}-[0-9]{4} (?![0-9A-Za-z_]|[.-][0-9])  (?P<ssn>)
              | # North American: 415-555-2671, 415.555.2671, 415 555 2671,
                # 1-800-555-0199, 1 (800) 555-0199
                (?: [0-9]{2}(?P<ns>[\ .-])[0-9]{3}(?P=ns)[0-9]{4}
                  | (?<=1)(?P<ps>[\ .-])[0-9]{3}(?P=ps)[0-9]{3}(?P=ps)[0-9]{4}
                  | (?<=1)[\ .-]?\([0-9]{3}\)\ ?[0-9]{3}[\ .-][0-9]{4} )
                (?![0-9A-Za-z_]|[.-][0-9])  (?P<nanp>)
              | # national numbers with a trunk 0: 020 7946 0958, 06 12 34 56 78
                (?<=0) [0-9]{1,4}(?P<zs>[\ .-])[0-9]{2,8}(?:(?P=zs)[0-9]{2,8}){0,3}
                (?![0-9A-Za-z_]|[.:/-][0-9])  (?P<national>)
              | # IPv4
                [0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3} (?![0-9]|\.[0-9])  (?P<ip>)
            )
        )
    )
    """,
    re.VERBOSE,
)

_NOT_DIGIT = re.compile(r"[^0-9]")
_VERSION_CONTEXT = re.compile(r"(?:version|release|build|ver\.?|v)[ \t:=]*\Z", re.I)

# ISO 13616 IBAN lengths by country (SWIFT IBAN registry); other countries are not matched.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "LY": 25, "RU": 33, "SD": 18,
    "DJ": 27, "MN": 20, "SO": 23, "OM": 23, "FK": 18,
}  # fmt: skip


_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")  # digit sum of 2 * d


def _luhn(digits: str) -> bool:
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(map(int, kept)) + sum(map(int, doubled))) % 10 == 0


def _card_prefix(digits: str) -> bool:
    """Issuer prefixes of Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro."""
    first = digits[0]
    if first == "2":
        return 2221 <= int(digits[:4]) <= 2720
    if first == "3":
        return digits[1] in "045678"
    return first in "456"


_IBAN_LETTERS = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})  # A=10 ...


def _iban_checksum(iban: str) -> bool:
    return int((iban[4:] + iban[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _iban(m: re.Match[str]) -> _Edit | None:
    text = m.string
    start = m.start() - 2
    length = _IBAN_LENGTHS.get(text[start : start + 2])
    if length is None:
        return None  # not a country with IBANs (or not in the table)
    compact = text[start : start + 2] + m.group().replace(" ", "")
    if length > len(compact) or not _iban_checksum(compact[:length]):
        return None
    # map the compact length back onto the text, spaces included
    wanted, end = length - 2, m.start()
    while wanted:
        if text[end] != " ":
            wanted -= 1
        end += 1
    if end < m.end() and text[end] != " ":
        return None  # glued to more letters or digits: not where the IBAN ends
    return start, end, IBAN


def _phone_intl(m: re.Match[str]) -> _Edit | None:
    number = m.group()
    digits = _NOT_DIGIT.sub("", number)
    if not 8 <= len(digits) <= 15:
        return None
    if " -" in number or "- " in number or number.count(".") == 1:
        return None  # "+40.7128 -74.0060" is a coordinate pair, "+12.5" a decimal
    if number.count("(") != number.count(")"):
        return None
    return m.start(), m.end(), PHONE


def _ip(m: re.Match[str]) -> _Edit | None:
    address = m.group()
    octets = address.split(".")
    if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
        return None
    if sum(map(len, octets)) < 7:  # 1.2.3.4, 10.0.0.1: more often versions than people
        return None
    if _VERSION_CONTEXT.search(m.string, max(0, m.start() - 12), m.start()):
        return None
    return m.start(), m.end(), IP_ADDRESS


def _number(m: re.Match[str]) -> _Edit | None:
    kind = m.lastgroup
    if kind == "iban":
        return _iban(m)
    if kind == "intl":
        return _phone_intl(m)
    if kind in ("nanp", "nanp_paren"):
        return m.start(), m.end(), PHONE
    if kind == "card":
        digits = _NOT_DIGIT.sub("", m.group())
        if _card_prefix(digits) and _luhn(digits):
            return m.start(), m.end(), CARD_NUMBER
        return None
    if kind == "ssn":
        number = m.group()
        area, group, serial = number[:3], number[4:6], number[7:]
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            return None
        return m.start(), m.end(), SSN
    if kind == "national":
        if 9 <= len(_NOT_DIGIT.sub("", m.group())) <= 13:
            return m.start(), m.end(), PHONE
        return None
    if kind == "ip":
        return _ip(m)
    return None  # pragma: no cover - every alternative ends with a marker group


_PERSONAL_RULES: tuple[_Rule, ...] = (
    _RegexRule(_EMAIL_DOMAIN, _email, gate="@"),
    _RegexRule(_NUMBER, _number, gate="0123456789"),
)

_REDACT_RULES: Final = _CREDENTIAL_RULES + _PERSONAL_RULES


# -- the API -----------------------------------------------------------------------------


def scrub_secrets(text: str) -> str:
    """Mask credentials in ``text``; personal data is left as it is.

    Masks API keys (OpenAI/Anthropic-style ``sk-...``, Stripe, Google, Groq), AWS access
    key ids and secret keys, GitHub/GitLab/Slack/Hugging Face tokens, JWTs, ``Bearer`` and
    ``Basic`` credentials, passwords in URLs and in ``password=...`` style assignments,
    values labelled ``secret``/``token``/``api_key``/``Authorization``, and PEM private key
    blocks. Meant for text kept in every content mode, such as provider error messages.
    Returns ``text`` itself when there is nothing to mask.
    """
    return _apply(text, _CREDENTIAL_RULES)


def redact(text: str) -> str:
    """Mask personal data and credentials in ``text`` with typed placeholders.

    Everything :func:`scrub_secrets` masks, plus e-mail addresses (``[EMAIL]``), phone
    numbers (``[PHONE]``), card numbers that pass the Luhn check (``[CARD_NUMBER]``), IBANs
    that pass their checksum (``[IBAN]``), US social security numbers (``[SSN]``) and IPv4
    addresses (``[IP_ADDRESS]``). Names and street addresses are not detected. Returns
    ``text`` itself when there is nothing to mask.
    """
    return _apply(text, _REDACT_RULES)
