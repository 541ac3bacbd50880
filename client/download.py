"""Saving a download: a temporary file beside the target, verified, then renamed into place."""

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from email.message import Message
from pathlib import Path

import httpx

from client.api import EXIT_BAD_DOWNLOAD, CliError


def filename_from(response: httpx.Response, job_id: str) -> str:
    """The Content-Disposition filename, reduced to a plain name, else the API's usual one."""
    header = Message()
    header["content-disposition"] = response.headers.get("content-disposition", "")
    name = Path((header.get_filename() or "").replace("\\", "/")).name
    if not name or name.startswith("."):
        return f"digits_of_pi_{job_id}.zip"
    return name


def destination(output: Path | None, filename: str) -> Path:
    """No -o: the current directory; -o DIR (existing, or ending in /): inside it; else -o FILE."""
    if output is None:
        return Path(filename)
    if output.is_dir() or str(output).endswith(os.sep):
        return output / filename
    return output


def zipped_text_sha256(path: Path) -> str:
    """SHA-256 of the one text file in the zip (reading it also checks the zip's CRC)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise CliError(EXIT_BAD_DOWNLOAD, f"expected one file in the zip, found {names}")
            digest = hashlib.sha256()
            with archive.open(names[0]) as text:
                while chunk := text.read(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()
    except zipfile.BadZipFile as error:
        raise CliError(EXIT_BAD_DOWNLOAD, f"the download is not a valid zip: {error}") from None


def save_download(
    response: httpx.Response, target: Path, on_bytes: Callable[[int], None] = lambda _: None
) -> str:
    """Stream the body to `target` atomically; return the verified SHA-256 of the text inside."""
    expected = response.headers.get("x-content-sha256", "").strip().lower()
    folder = target.parent
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        raise CliError(EXIT_BAD_DOWNLOAD, f"cannot write to {folder}: {error.strerror}") from None
    partial = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
                on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        sha256 = zipped_text_sha256(partial)
        if expected and sha256 != expected:
            raise CliError(
                EXIT_BAD_DOWNLOAD,
                f"the download is corrupt: its text has SHA-256 {sha256}, "
                f"the server announced {expected}",
            )
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o666 & ~umask)
        partial.replace(target)
        return sha256
    except OSError as error:
        raise CliError(EXIT_BAD_DOWNLOAD, f"cannot write {target}: {error.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
