"""Textual's parsed stylesheet rules, kept between starts (issue 13).

Textual parses the same CSS at every start: the ``DEFAULT_CSS`` of each widget class the
first screen mounts and our ``app.tcss``, ~84 rule sets and ~20 ms of CPU before the first
painted room list (and some of it twice: a theme set in ``App.__init__`` re-parses into a
new ``Stylesheet`` whose own cache is empty). :func:`install` wraps
``Stylesheet._parse_rules`` so that a text parsed by an earlier start is read back from a
table instead (the pickled ``RuleSet`` list, in a 0600 file under the user's cache folder
or ``$TUI_CLIENT_CSS_CACHE``, each entry unpickled when first used: ~8x faster than the
parse); :func:`save` (at exit) writes the table when something was added.

An entry is keyed by a digest of everything the parse reads: the CSS text, where it was
read from, ``is_default_rules``, the tie breaker, the scope and the CSS variables (the
theme's colours: a theme switched at run time parses anew under a new key), salted with the
file's header, which names Python's version and the size and time of each Textual and Rich
file that makes or reads the rule sets (an install or upgrade changes them; Textual's
version string would cost ~7 ms of ``importlib.metadata`` at each start). A file of another
header, damaged, or not the user's own is ignored and written anew; an entry that does not
unpickle to a list of rule sets is parsed again. Each use gets new objects,
as a parse gives; rules with errors are never kept (Textual reports them as it always did).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import os
import pickle
import sys
from pathlib import Path
from typing import Any

from textual.css.model import RuleSet
from textual.css.stylesheet import Stylesheet

from ..engine.table_file import KeptTable, cache_file

__all__ = ["cache_path", "install", "save", "stats", "uninstall"]

#: The modules whose code makes and reads the rule sets: a table kept by other files of
#: theirs (another Textual or Rich, an upgrade) is not read. (Not ``textual.__version__``:
#: it is read with ``importlib.metadata``, ~7 ms of imports at every start.)
_MODULES = (
    "textual",
    "textual.color",
    "textual.css._styles_builder",
    "textual.css.model",
    "textual.css.parse",
    "textual.css.scalar",
    "textual.css.styles",
    "textual.css.stylesheet",
    "textual.css.tokenize",
    "textual.geometry",
    "rich.style",
)
#: A table grown past this (texts of older versions, themes tried once) keeps only this
#: run's entries, the most recently used first.
MAX_ENTRIES = 600

#: Digest of a parse's inputs -> the pickled list of rule sets it gave.
_kept = KeptTable(".css-rules.", MAX_ENTRIES)
_loaded = False
_real_parse_rules = Stylesheet._parse_rules
#: What :func:`uninstall` puts back (``_real_parse_rules`` is what the wrapper calls).
_TEXTUAL_PARSE_RULES = Stylesheet._parse_rules
#: The arguments of the ``_parse_rules`` this wraps (Textual 8).
_ARGUMENTS = ("self", "css", "read_from", "is_default_rules", "tie_breaker", "scope")
#: The digest of each set of variables seen (a theme's), keyed by its items.
_variables_digests: dict[tuple[tuple[str, str], ...], bytes] = {}


def cache_path() -> Path:
    """``$TUI_CLIENT_CSS_CACHE`` if set, else a file in the user's cache folder."""
    return cache_file("TUI_CLIENT_CSS_CACHE", "css-rules")


def _versions() -> str:
    """This Python, and the size and time of each file of :data:`_MODULES`."""
    parts = [sys.implementation.cache_tag or "python", "pickle 5"]
    for name in _MODULES:
        path = getattr(importlib.import_module(name), "__file__", None)  # (all loaded by now)
        try:
            info = os.stat(path) if path else None
        except OSError:
            info = None
        parts.append(f"{name} {info.st_size} {info.st_mtime_ns}" if info else f"{name} -")
    return "; ".join(parts)


def _variables_digest(variables: dict[str, str]) -> bytes:
    items = tuple(variables.items())
    digest = _variables_digests.get(items)
    if digest is None:
        text = repr(sorted(items)).encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(text, digest_size=20).digest()
        if len(_variables_digests) > 32:
            _variables_digests.clear()
        _variables_digests[items] = digest
    return digest


def _digest(key: tuple[Any, ...], variables: dict[str, str]) -> bytes:
    hasher = hashlib.blake2b(_kept.header, digest_size=20)
    hasher.update(_variables_digest(variables))
    hasher.update(repr(key).encode("utf-8", "surrogatepass"))
    return hasher.digest()


def _stored(digest: bytes) -> list[RuleSet] | None:
    """The rule sets kept under ``digest``, new objects; None if none or unreadable."""
    global _loaded
    if not _loaded:
        _loaded = True
        _kept.read()
    stored = _kept.entries.get(digest)
    if stored is None:
        return None
    try:
        rules = pickle.loads(stored)
    except Exception:  # a damaged entry: parsed again and replaced
        rules = None
    if type(rules) is list and all(type(rule) is RuleSet for rule in rules):
        return rules
    _kept.drop(digest)
    return None


def _keep(digest: bytes, rules: list[RuleSet]) -> None:
    if any(rule.errors for rule in rules):
        return  # Textual reports them at every parse, as it does without the table
    try:
        stored = pickle.dumps(rules, protocol=5)
    except Exception:  # something in a future Textual's rules that does not pickle
        return
    _kept.add(digest, stored)


def _parse_rules(
    self: Stylesheet,
    css: str,
    read_from: tuple[str, str],
    is_default_rules: bool = False,
    tie_breaker: int = 0,
    scope: str = "",
) -> list[RuleSet]:
    """``Stylesheet._parse_rules``, reading back what an earlier start parsed."""
    key = (css, read_from, is_default_rules, tie_breaker, scope)
    rules = self._parse_cache.get(key)
    if rules is not None:
        return rules
    digest = _digest(key, self._variables)
    rules = _stored(digest)
    _kept.use(digest, hit=rules is not None)
    if rules is None:
        rules = _real_parse_rules(self, css, read_from, is_default_rules, tie_breaker, scope)
        _keep(digest, rules)
    else:
        self._parse_cache[key] = rules
    return rules


def install(path: Path | None = None, *, save_at_exit: bool = True) -> None:
    """Parse Textual's stylesheets through the table in ``path`` (else :func:`cache_path`),
    read when first needed; with ``save_at_exit``, :func:`save` runs when the process ends."""
    global _loaded
    if _real_parse_rules.__code__.co_varnames[:6] != _ARGUMENTS:
        return  # another Textual's parse: left as it is
    header = f"tui-css-rules-2; {_versions()}\n".encode()
    _kept.open(path if path is not None else cache_path(), header)
    _loaded = False
    setattr(Stylesheet, "_parse_rules", _parse_rules)  # noqa: B010 - a method replaced
    if save_at_exit:
        atexit.register(save)


def uninstall() -> None:
    """Textual's own ``_parse_rules`` back, if ours was installed; the table forgotten
    (tests)."""
    global _loaded
    if Stylesheet._parse_rules is _parse_rules:
        setattr(Stylesheet, "_parse_rules", _TEXTUAL_PARSE_RULES)  # noqa: B010 - restored
    _kept.clear()
    _loaded = False


def stats() -> dict[str, int]:
    """Texts read back from the table, parsed anew, and the table's size."""
    return _kept.stats()


def save() -> bool:
    """Write the table if this run added to it (0600, replaced whole). True if written."""
    return _kept.save()
