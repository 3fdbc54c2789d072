"""tui_client: a terminal chat client for Matrix."""

__version__ = "0.1.0"
