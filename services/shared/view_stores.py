"""Opens the view store a URL names: a SQLite file on one host, PostgreSQL for several."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from services.shared.postgres_view import PostgresView
from services.shared.sql_view import SqlView
from services.shared.sqlite_view import SqliteView

_FORMS = "sqlite:///absolute/path, a file path, or postgresql://user@host:port/database"


def open_view(url: str, writer: bool = False) -> SqlView:
    """sqlite:///absolute/path or a plain path -> SqliteView; postgresql://... -> PostgresView."""
    if not url:
        raise ValueError(f"the view URL is empty: use {_FORMS}")
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):  # libpq accepts both
        return PostgresView(url, writer=writer)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
            raise ValueError("a SQLite view URL takes an absolute path: sqlite:///absolute/path")
        return SqliteView(Path(unquote(parts.path)), writer=writer)
    if not parts.scheme:
        return SqliteView(Path(url), writer=writer)
    # Only the scheme: the rest may hold a password.
    raise ValueError(f"unsupported view URL scheme {parts.scheme!r}: use {_FORMS}")
