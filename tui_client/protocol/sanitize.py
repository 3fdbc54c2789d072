"""Make untrusted text safe to put on a terminal.

Everything a remote party controls (message bodies, display names, room names,
topics, file names) goes through :func:`clean_text` or :func:`clean_line` before
it is shown. They remove whole escape sequences (CSI, OSC, DCS and friends, in
their 7-bit form), C0 controls other than newline and tab, DEL, C1 controls, and
the Unicode bidirectional embedding/override/isolate controls that can make text
display differently from its logical order. The result is plain text: callers
must still never interpret it as markup.
"""

from __future__ import annotations

import re

__all__ = ["clean_line", "clean_text", "is_clean"]

_ESCAPE_SEQUENCE = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]?         # CSI: parameters, intermediates, final byte
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?  # OSC, ended by BEL or ST (or the end)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?       # DCS, SOS, PM, APC, ended by ST
    | \x1b[\x20-/]*[0-~]?                 # any other escape sequence, or a lone ESC
    """,
    re.VERBOSE,
)
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85]")
# C0 but \t and \n, DEL, C1, and the bidi controls LRE RLE PDF LRO RLO LRI RLI FSI PDI.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\n\t]+")


def is_clean(text: str) -> bool:
    """True if ``text`` has nothing that :func:`clean_text` would change."""
    return _UNSAFE.search(text) is None


def clean_text(text: object) -> str:
    """Return ``text`` without escape sequences or unsafe controls; keeps ``\\n`` and ``\\t``.

    Carriage returns and Unicode line separators become ``\\n``, so that text cannot
    overwrite itself on the terminal. Non-strings become ``""``.
    """
    if not isinstance(text, str):
        return ""
    if _UNSAFE.search(text) is None:
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _NEWLINES.sub("\n", text)
    return _FORBIDDEN.sub("", text)


def clean_line(text: object, max_length: int | None = None) -> str:
    """Like :func:`clean_text`, but on one line: newlines and tabs become single spaces.

    Used for names, topics in headers and anything else that must stay on one row.
    ``max_length`` truncates with an ellipsis.
    """
    cleaned = clean_text(text)
    if "\n" in cleaned or "\t" in cleaned:
        cleaned = _LINE_BREAKS.sub(" ", cleaned)
    if max_length is not None and len(cleaned) > max_length:
        cleaned = cleaned[: max(0, max_length - 1)] + "…"
    return cleaned
