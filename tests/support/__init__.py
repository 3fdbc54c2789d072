"""Helpers shared by the whole test suite (one copy of each).

- :mod:`.waiting`: wait for a condition, in plain asyncio or in a running Textual app.
- :mod:`.updates`: :class:`~.updates.Recorder`, every update a client published.
- :mod:`.users`: the ``make_user`` factory's type, :data:`~.users.MakeUser`.
- :mod:`.synapse`: a homeserver of a module's own (restartable, other limits).

The shared fixtures themselves (``synapse``, ``make_user``) are in ``tests/conftest.py``.
"""
