"""Validated field types, shared by the API schemas, the deploy models, route parameters and
the node agent. Patterns match the whole value (`re.fullmatch`, whichever regex engine pydantic
runs), so "web\n" is refused; each error message says how to fix the value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    IPvAnyAddress,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
ENV_KEY = r"[A-Z_][A-Z0-9_]*"
IMAGE_REF = (
    r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)
GIT_REF = r"(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}"
HEALTH_PATH = r"/[A-Za-z0-9._~/%?=&-]{0,1023}"
OBJECT_ID = r"[a-f0-9]{32}"
ID_PREFIX = r"[a-f0-9]{4,32}"
NO_NUL = r"[^\x00]*"
NO_CONTROL = r"[^\x00-\x1f\x7f]*"
FINGERPRINT = r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}"
# Characters that rewrite a terminal or a line of text: C0 and C1 controls (NUL, ESC, CR, ...),
# DEL, the line and paragraph separators and the bidirectional controls (U+202E and kin).
_INVISIBLE = r"\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
SINGLE_LINE = rf"[^\x00-\x1f{_INVISIBLE}]*"
MULTI_LINE = rf"[^\x00-\x08\x0b-\x1f{_INVISIBLE}]*"  # newline and tab allowed
# Git URLs: https/http/ssh/git/file URLs, user@host:path or an absolute path. No part may start
# with '-' (git or ssh would read it as an option), a bracketed host must be an IPv6 literal
# (checked in `is_git_url`), and `ext::`-style transports match none of the forms.
_URL_CHAR = rf"[^\s/@\[\]\x00-\x1f{_INVISIBLE}]"
_GIT_PATH = rf"(?:/(?!-){_URL_CHAR}*)*"
_GIT_HOST = r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])"
_GIT_USER = rf"(?:(?!-){_URL_CHAR}+@)?"
GIT_URL = (rf"(?:https?|ssh|git)://{_GIT_USER}{_GIT_HOST}(?::[0-9]{{1,5}})?{_GIT_PATH}"
           rf"|file://{_GIT_HOST}?(?:/(?!-){_URL_CHAR}*)+"
           rf"|[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:(?=[^-]){_URL_CHAR}*"
           rf"{_GIT_PATH}|(?:/(?!-){_URL_CHAR}*)+")
DOMAIN_NAME = rf"(?:{DNS_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z0-9])?"
HTTPS_URL = r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?"
WEB_URL = (r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?"
           r"(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?(?:\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?")
MASK = "********"
# Set by Dockyard (PORT, DOCKYARD_*) or the container (HOME, HOSTNAME, PATH), or a way to
# hijack the dynamic loader and the C library (LD_*, GCONV_PATH, GLIBC_TUNABLES).
RESERVED_ENV_KEYS = ("PORT", "HOME", "HOSTNAME", "PATH", "GCONV_PATH", "GLIBC_TUNABLES")
RESERVED_ENV_PREFIXES = ("DOCKYARD_", "LD_")
RESERVED_ENV_TEXT = ", ".join([*RESERVED_ENV_KEYS, *(f"{p}*" for p in RESERVED_ENV_PREFIXES)])


@dataclass(frozen=True)
class Whole:
    """Annotated metadata: the value must match `pattern` from its first character to its last
    (`re.fullmatch`); the JSON schema documents it as `^(?:pattern)$` (ECMA-262, where `$` is
    the end of the value)."""

    pattern: str
    message: str

    def check(self, value: str) -> str:
        if re.fullmatch(self.pattern, value) is None:
            raise PydanticCustomError("invalid_format", self.message)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler
                                     ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": f"^(?:{self.pattern})$"}


Name = Annotated[str, Field(min_length=1, max_length=63), Whole(
    DNS_LABEL, "use 1-63 lowercase letters, digits or dashes, starting and ending with a "
               "letter or digit (like 'my-app')")]
EnvKeyName = Annotated[str, Field(min_length=1, max_length=255), Whole(
    ENV_KEY, "use uppercase letters, digits and underscores, not starting with a digit "
             "(like 'DATABASE_URL')")]


def _not_reserved(key: str) -> str:
    if key in RESERVED_ENV_KEYS or key.startswith(RESERVED_ENV_PREFIXES):
        raise PydanticCustomError(
            "reserved_name", "{key} is reserved (Dockyard, the container or the loader sets "
            "it: {reserved}); choose another name", {"key": key, "reserved": RESERVED_ENV_TEXT})
    return key


_RESERVED_SCHEMA = {"not": {"anyOf": [
    {"enum": list(RESERVED_ENV_KEYS)},
    {"pattern": f"^(?:{'|'.join(RESERVED_ENV_PREFIXES)})"}]}}
# A variable a service may set: the grammar, minus the reserved names.
EnvKey = Annotated[EnvKeyName, AfterValidator(_not_reserved),
                   Field(json_schema_extra=_RESERVED_SCHEMA)]
EnvValue = Annotated[str, Field(max_length=32 * 1024), Whole(
    NO_NUL, "a value cannot hold a NUL character")]
ImageRef = Annotated[str, Field(min_length=1, max_length=512), Whole(
    IMAGE_REF, "not an image reference; use a form like "
               "'registry.example.com:5000/team/app:1.2' or 'nginx:1.27'")]
GitRef = Annotated[str, Field(max_length=255), Whole(
    GIT_REF, "use letters, digits, '.', '_', '/' and '-', starting with a letter, digit or "
             "'_', without '..' (like 'main' or 'v1.2')")]
HealthPath = Annotated[str, Field(max_length=1024), Whole(
    HEALTH_PATH, "use a path starting with '/' of letters, digits and ._~/%?=&- "
                 "(like '/healthz')")]
ObjectId = Annotated[str, Whole(OBJECT_ID, "use an id of 32 hex digits (0-9, a-f)")]
IdPrefix = Annotated[str, Whole(ID_PREFIX, "use 4 to 32 hex digits (0-9, a-f) of an id")]
Argument = Annotated[str, Field(max_length=4096), Whole(
    NO_NUL, "an argument cannot hold a NUL character")]
SingleLine = Annotated[str, Field(max_length=200), Whole(
    SINGLE_LINE, "use one line of text without control characters (tab, newline, escape, "
                 "NUL), line separators or bidirectional overrides")]
MultiLine = Annotated[str, Field(max_length=500), Whole(
    MULTI_LINE, "use text without control characters (other than newline and tab), "
                "line separators or bidirectional overrides")]


def is_git_url(url: str) -> bool:
    """Whether git may be handed `url` without reading any part of it as an option."""
    bracketed = re.search(r"\[([^\]]*)\]", url)
    return (len(url) <= 2048 and re.fullmatch(GIT_URL, url) is not None
            and (bracketed is None or _is_ipv6(bracketed[1])))


def _is_ipv6(text: str) -> bool:
    try:
        IPv6Address(text)
    except ValueError:
        return False
    return True


def _git_url(url: str) -> str:
    if not is_git_url(url):
        raise PydanticCustomError("invalid_format", GIT_URL_HELP)
    return url


GIT_URL_HELP = ("not a git URL; use https://, http://, ssh://, git://, file://, user@host:path "
                "or an absolute path, with no part starting with '-' and only IPv6 addresses "
                "in brackets")
GitUrl = Annotated[str, Field(min_length=1, max_length=2048,
                              json_schema_extra={"pattern": f"^(?:{GIT_URL})$"}),
                   AfterValidator(_git_url)]
ProviderToken = Annotated[str, Field(min_length=1, max_length=4096), Whole(
    r"[\x21-\x7e]+", "paste the token as the provider shows it: printable ASCII, no spaces")]
# Pydantic itself refuses strings that are not valid Unicode (unpaired surrogates).
_NO_CONTROL_HELP = "cannot hold control characters (tab, newline, escape, NUL)"
Password = Annotated[str, Field(min_length=8, max_length=256), Whole(
    NO_CONTROL, f"a password {_NO_CONTROL_HELP}")]
# A password typed again to prove it (whatever length rules it was set under).
AnyPassword = Annotated[str, Field(min_length=1, max_length=256), Whole(
    NO_CONTROL, f"a password {_NO_CONTROL_HELP}")]
LoginName = Annotated[str, Field(min_length=1, max_length=320), Whole(
    NO_CONTROL, f"an email address {_NO_CONTROL_HELP}")]
Fingerprint = Annotated[str, Whole(
    FINGERPRINT, "use the SHA-256 fingerprint as `dockyard-agent fingerprint` prints it: 32 "
                 "pairs of uppercase hex digits joined by ':'")]


def _unscoped(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        raise PydanticCustomError("scoped_address", "use an address without a zone id "
                                  "(like 'fe80::1', not 'fe80::1%eth0')")
    return address


IpAddress = Annotated[IPvAnyAddress, AfterValidator(_unscoped), WithJsonSchema(
    {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})]


from dockyard.models.emails import valid_email  # noqa: E402 (appended with the Email type)

# An email address in its one stored spelling (stripped, NFKC, lowercase), checked by
# email-validator; see models/emails.py for the look-alike skeleton accounts also store.
Email = Annotated[
    str, Field(min_length=3, max_length=320, json_schema_extra={"format": "email"}),
    AfterValidator(valid_email),
]

# A path inside an app's source tree (a monorepo's subdirectory, a Dockerfile's name):
# relative, '/'-separated names of letters, digits and ._-, none of them '.' or '..'.
APP_PATH = r"(?!(?:.*/)?\.{1,2}(?:/|$))[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*"
AppPath = Annotated[str, Field(min_length=1, max_length=1024), Whole(
    APP_PATH, "use a relative path inside the app like 'services/web' or 'docker/Dockerfile' "
              "(letters, digits, '.', '_', '-' and '/'; no '..')")]
ProcessType = Annotated[str, Whole(
    r"[a-z][a-z0-9_-]{0,29}", "use a Procfile process type: lowercase letters, digits, '_' "
    "and '-', starting with a letter (at most 30)")]
# A build argument: KEY=value, the key in the environment variable grammar, the value one line.
BUILD_ARG = r"[A-Za-z_][A-Za-z0-9_]*=[^\x00-\x1f\x7f]*"
BuildArg = Annotated[str, Field(min_length=2, max_length=4096), Whole(
    BUILD_ARG, "use KEY=value (a key of letters, digits and '_', a value on one line)")]



def _cron_field(value: str) -> str:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item}){{0,19}}"


# Five cron fields of numbers (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7
# with 0 and 7 Sunday): '*', values, ranges and lists, each with an optional /step.
CRON = " +".join(_cron_field(value) for value in (
    r"[0-5]?[0-9]", r"(?:[01]?[0-9]|2[0-3])", r"(?:0?[1-9]|[12][0-9]|3[01])",
    r"(?:0?[1-9]|1[0-2])", r"[0-7]"))
CRON_HELP = ("use a cron schedule of five fields of numbers: minute hour day-of-month month "
             "day-of-week, like '0 3 * * *' (daily at 03:00 UTC) or '*/30 * * * *'")


def is_cron(schedule: str) -> bool:
    """Five numeric cron fields that croniter reads and that come round at least once."""
    from croniter import CroniterBadDateError, croniter  # here: the node agent never needs it

    if re.fullmatch(CRON, schedule) is None or not croniter.is_valid(schedule):
        return False
    try:
        croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def _cron(schedule: str) -> str:
    if not is_cron(schedule):
        raise PydanticCustomError("invalid_cron", "that schedule never comes round (like "
                                  f"30 February); {CRON_HELP}")
    return re.sub(" +", " ", schedule)


# A backup schedule, stored with single spaces between its fields.
CronSchedule = Annotated[str, Field(min_length=1, max_length=100), Whole(CRON, CRON_HELP),
                         AfterValidator(_cron)]


# At most 95 characters: each server's edge reaches a name's switch through a unix socket path
# that holds the name, and such a path holds 107 bytes.
DomainName = Annotated[str, Field(min_length=4, max_length=95), Whole(
    DOMAIN_NAME, "use a lowercase domain name of two labels or more, like 'shop.example.com' "
    "(letters, digits and '-' between dots; no trailing dot, no wildcard)")]
HttpsUrl = Annotated[str, Field(max_length=500), Whole(
    HTTPS_URL, "use an https:// URL, like 'https://acme-v02.api.letsencrypt.org/directory'")]
WebUrl = Annotated[str, Field(max_length=2048), Whole(
    WEB_URL, "use an https:// (or http://) URL without spaces or a fragment, like "
             "'https://hooks.example.com/dockyard'")]
