"""Email addresses: one spelling per address, and a skeleton that look-alikes share."""

from __future__ import annotations

import unicodedata

from pydantic_core import PydanticCustomError

# Letters that look like a Latin letter once lowercased (Cyrillic, Greek, Armenian, IPA and
# others); fullwidth and compatibility forms are already folded by NFKC/NFKD.
_LOOK_ALIKES_BY_LATIN = {
    "a": "аᴀɑα",
    "b": "вβ",
    "c": "сϲᴄ",  # noqa: RUF001
    "d": "ԁɗ",
    "e": "еёε",
    "g": "ɡ",  # noqa: RUF001
    "h": "һ",  # noqa: RUF001
    "i": "іїıιɩ",
    "j": "јϳ",  # noqa: RUF001
    "k": "κк",
    "l": "ӏǀ",  # noqa: RUF001
    "m": "м",
    "n": "пոη",
    "o": "оοօσ",  # noqa: RUF001
    "p": "рρ",  # noqa: RUF001
    "q": "ԛ",  # noqa: RUF001
    "r": "г",  # noqa: RUF001
    "s": "ѕ",  # noqa: RUF001
    "t": "тτ",
    "u": "υս",  # noqa: RUF001
    "v": "νѵ",  # noqa: RUF001
    "w": "ԝω",
    "x": "хχ",
    "y": "уγүʏ",  # noqa: RUF001
    "z": "ᴢζ",
}
_LOOK_ALIKES = str.maketrans(
    {alike: latin for latin, alikes in _LOOK_ALIKES_BY_LATIN.items() for alike in alikes}
)


def normalize_email(email: str) -> str:
    """The one stored spelling: surrounding space stripped, Unicode NFKC, lowercase."""
    return unicodedata.normalize("NFKC", email.strip()).lower()


def email_skeleton(email: str) -> str:
    """What the address looks like: accents and invisible characters dropped, look-alike
    letters of other scripts mapped to Latin (`admin@` with a Cyrillic U+0430 equals `admin@`)."""
    decomposed = unicodedata.normalize("NFKD", normalize_email(email)).lower()
    kept = (c for c in decomposed if unicodedata.category(c) not in {"Mn", "Me", "Cf"})
    return "".join(kept).translate(_LOOK_ALIKES)


def valid_email(email: str) -> str:
    """The address in its stored spelling, or a message saying what is wrong with it."""
    from email_validator import EmailNotValidError, validate_email  # not in the agent: 1 MB

    try:
        # test_environment: `.test` addresses are accepted (test setups, and the
        # generators that check the OpenAPI `format: email`).
        checked = validate_email(normalize_email(email), check_deliverability=False,
                                 test_environment=True)
    except EmailNotValidError as exc:
        raise PydanticCustomError("invalid_email", "not an email address: {reason}",
                                  {"reason": str(exc)}) from None
    return normalize_email(checked.normalized)

