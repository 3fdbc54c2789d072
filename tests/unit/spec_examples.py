"""Load the official event examples from the Matrix spec, with ``$ref`` resolved.

The examples in ``data/event-schemas/examples`` say ``"$ref": "core/room_event.json"``
(or another example) and then list their own keys. Resolving merges the referenced
document under the example's own keys, recursively, as the spec's site generator does:
nested objects are merged key by key, except ``content``, which is the example itself
and replaces the placeholder content of ``core/event.json`` wholesale.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_ROOT = Path("/work/shared/matrix-spec")
EXAMPLES_DIR = SPEC_ROOT / "data" / "event-schemas" / "examples"
CLIENT_SERVER_API_DIR = SPEC_ROOT / "data" / "api" / "client-server"

# Core documents whose presence in a $ref chain makes an example a room event.
ROOM_EVENT_CORES = frozenset({"room_event.json", "state_event.json"})

# Keys whose value is taken from the example as a whole, never merged with the base.
_REPLACED_KEYS = frozenset({"content"})


def load_document(path: Path) -> Any:
    """Parse a JSON or YAML file (the ``.yaml`` examples are JSON, but YAML is accepted)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if key in merged and key not in _REPLACED_KEYS:
                merged[key] = _merge(merged[key], value)
            else:
                merged[key] = value
        return merged
    return override


def resolve(value: Any, directory: Path, chain: list[str] | None = None) -> Any:
    """Resolve every ``$ref`` in ``value`` (relative to ``directory``), recursively.

    ``chain``, when given, collects the file names of every document referenced.
    """
    if isinstance(value, list):
        return [resolve(item, directory, chain) for item in value]
    if not isinstance(value, dict):
        return value
    own = {k: resolve(v, directory, chain) for k, v in value.items() if k != "$ref"}
    ref = value.get("$ref")
    if not isinstance(ref, str):
        return own
    target = (directory / ref.split("#", 1)[0]).resolve()
    if chain is not None:
        chain.append(target.name)
    base = resolve(load_document(target), target.parent, chain)
    return _merge(base, own) if own else base


@cache
def _load(name: str) -> tuple[Any, tuple[str, ...]]:
    chain: list[str] = []
    data = resolve(load_document(EXAMPLES_DIR / name), EXAMPLES_DIR, chain)
    return data, tuple(chain)


def example_names() -> list[str]:
    """Every example file name (not the ``core`` directory), sorted."""
    return sorted(
        p.name for p in EXAMPLES_DIR.iterdir() if p.is_file() and p.suffix in (".yaml", ".json")
    )


def load_example(name: str) -> Any:
    """The example, ``$ref`` resolved. A fresh deep copy each call (tests may mutate it)."""
    data, _ = _load(name)
    return json.loads(json.dumps(data))


def ref_chain(name: str) -> tuple[str, ...]:
    """File names of every document the example references, directly or not."""
    return _load(name)[1]


def is_room_event_example(name: str) -> bool:
    """True if the example is a room event: it has an ``event_id`` or derives from
    ``core/room_event.json`` / ``core/state_event.json``."""
    data = load_example(name)
    if not isinstance(data, dict):
        return False
    return "event_id" in data or bool(ROOM_EVENT_CORES & set(ref_chain(name)))


def room_event_example_names() -> list[str]:
    """The names of all examples that are room events."""
    return [name for name in example_names() if is_room_event_example(name)]


def sync_response_example() -> dict[str, Any]:
    """The ``200`` response example of ``GET /sync`` from the OpenAPI file, refs resolved."""
    api = load_document(CLIENT_SERVER_API_DIR / "sync.yaml")
    response = api["paths"]["/sync"]["get"]["responses"]["200"]
    example = response["content"]["application/json"]["examples"]["response"]["value"]
    resolved = resolve(example, CLIENT_SERVER_API_DIR)
    assert isinstance(resolved, dict)
    return resolved
