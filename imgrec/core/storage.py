"""Where files live: local paths, or URLs on object stores read and written through Apache
Beam's filesystems (``gs://``, ``s3://``, ... whichever Beam has the extras for); ``s3://``
through imgrec's own client instead (core/s3.py: every call bounded in time), made from the
same Beam options.

A location is a ``Path`` for a local file and a ``str`` for a URL; ``location()`` makes one
from what the user typed. ``Folder`` is OUT: a local folder, or a prefix on an object store.
Writes are atomic on both: a file is written under a temporary name of its own
(``.NAME.<pid>-<random>.incomplete``, never shared by two attempts at one file) and renamed
when complete; on an object store the rename is a copy inside the store, and on
``s3://`` the file is uploaded whole from a local temporary file (an object appears only
once its upload is complete).

apache_beam is imported only when a URL is used.
"""

from __future__ import annotations

import contextlib
import glob as globbing
import hashlib
import os
import posixpath
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from . import s3
from .deps import import_beam
from .errors import DependencyError, ImgrecError, InputError, OutputError

Location = Path | str  # a str is always a URL

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
EXTRAS = {"gs": "gcs", "s3": "s3"}  # imgrec's extras with each scheme's Beam filesystem


def is_url(where: str | Path) -> bool:
    return isinstance(where, str) and bool(_URL.match(where))


def location(text: str | Path) -> Location:
    """A URL (kept as typed, without a trailing "/") or a local Path."""
    if not is_url(text):
        return Path(text)
    url = str(text).rstrip("/")
    if any(c in url for c in "*?[]"):
        raise InputError("URLs with * ? [ ] cannot be listed exactly; rename them", url)
    if not url.partition("://")[2]:
        raise InputError("name a bucket (scheme://bucket or scheme://bucket/folder)", url)
    try:
        _system(url)
    except ValueError:  # Beam has no filesystem for this scheme (its extra is missing)
        scheme = url.split(":", 1)[0]
        extra = EXTRAS.get(scheme)
        how = f'pip install "imgrec[{extra}]"' if extra else "install the Beam extra for it"
        raise DependencyError(
            f"{url}: Beam has no filesystem for {scheme}:// here; {how}"
        ) from None
    return url


def parse(text: str) -> Location:
    """A location imgrec wrote out itself (a plan line): checked when it was made, and an
    object's own name may hold characters that ``location`` refuses in what users type."""
    return text if is_url(text) else Path(text)


def join(base: Location, rel: str) -> Location:
    return f"{base}/{rel}" if isinstance(base, str) else base / rel


def absolute(where: Location) -> Location:
    return where if isinstance(where, str) else where.absolute()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; rename it to ``path`` only on success."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.incomplete")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def stream_sha256(f: BinaryIO) -> str:
    """Hex sha256 of what is left to read in ``f``, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def file_sha256(where: Location) -> str:
    """Hex sha256 of a file (local or URL), read in 1 MiB blocks."""
    with _remote(where, "read it", InputError), open_read(where) as f:
        return stream_sha256(f)


def size(where: Location) -> int | None:
    """The file's size in bytes, None if there is no such file."""
    if isinstance(where, Path):
        return where.stat().st_size if where.is_file() else None
    try:
        return stat(where)[0]
    except FileNotFoundError:
        return None


def expand(pattern: str) -> list[Location]:
    """The files a glob pattern matches, sorted (local, or URLs through Beam's filesystems)."""
    if not is_url(pattern):
        return [Path(m) for m in sorted(globbing.glob(pattern)) if Path(m).is_file()]
    if pattern.startswith("s3://"):
        return sorted(s3.match(pattern, options_for(pattern)))
    with _remote(pattern, "list what matches", InputError):
        found = _system(pattern).match([pattern])[0].metadata_list
    return sorted(str(m.path) for m in found)


def name_of(where: Location) -> str:  # the last path component of a file
    return where.name if isinstance(where, Path) else posixpath.basename(where)


def parent_of(where: Location) -> Location:
    """The folder (or prefix) a file is in."""
    return where.parent if isinstance(where, Path) else posixpath.dirname(where)


def filesystems() -> Any:
    """Beam's FileSystems class, or a DependencyError saying how to install it."""
    import_beam("for URLs")
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def configure(flags: Sequence[str]) -> None:
    """Give Beam's filesystems the pipeline options (credentials, endpoints, regions) when
    no pipeline is made to carry them (``--dry-run``)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    filesystems().set_options(PipelineOptions(list(flags)))
    forget_clients()


# One Beam FileSystem per scheme and process, made (and, for s3://, its credentials
# checked) on first use; forget_clients() drops them (and s3.py's clients) when the
# pipeline options change.
_systems: dict[str, Any] = {}


def _system(url: str) -> Any:
    scheme = url.partition("://")[0]
    if scheme not in _systems:
        fs = filesystems()
        if getattr(fs, "_pipeline_options", None) is None:  # no pipeline gave any yet
            configure([])
        _systems[scheme] = fs.get_filesystem(url)
        if scheme == "s3":
            s3.check_credentials(getattr(_systems[scheme], "_options", None), url)
    return _systems[scheme]


def options_for(url: str) -> Any:
    """The pipeline options Beam's filesystem for ``url`` was made with (for s3.py's client)."""
    return getattr(_system(url), "_options", None)


def _open(url: str) -> BinaryIO:
    from apache_beam.io.filesystem import CompressionTypes

    if url.startswith("s3://"):
        return s3.open_read(url, options_for(url))
    fs = _system(url)
    # Bytes as stored: no decompression guessed from a name ending in .gz or .bz2.
    return fs.open(url, compression_type=CompressionTypes.UNCOMPRESSED)  # type: ignore[no-any-return]


@contextlib.contextmanager
def _remote(where: Location, doing: str, error: type[ImgrecError] = OutputError) -> Iterator[None]:
    """An object store's failure (network, credentials, permissions) as one clear line; a
    local file's errors stay OSErrors."""
    if not isinstance(where, str):
        yield
        return
    try:
        yield
    except (ImgrecError, FileNotFoundError):
        raise
    except Exception as e:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise error(f"{where}: cannot {doing} ({text})") from None


def forget_clients() -> None:
    """Make new FileSystems (and clients) from here on: the pipeline options changed."""
    _systems.clear()
    s3.forget()


def open_read(where: Location) -> BinaryIO:
    """A file open for reading; errors are OSError (Beam's own errors are OSErrors too)."""
    if isinstance(where, str):
        try:
            return _open(where)
        except (OSError, ImgrecError):  # ImgrecError: an s3:// call that ran out of time
            raise
        except Exception as e:  # a client library's own error (auth, network)
            raise OSError(f"{type(e).__name__}: {e}") from None
    return open(where, "rb")


def stat(where: Location) -> tuple[int, int]:
    """``(size in bytes, modification time in ns)``."""
    if isinstance(where, str) and where.startswith("s3://"):
        found_size, seconds = s3.stat(where, options_for(where))
        return found_size, int(seconds * 1e9)
    if isinstance(where, str):
        with _remote(where, "look it up"):
            found = _system(where).match([where])[0].metadata_list
        if not found:
            raise FileNotFoundError(where)
        return found[0].size_in_bytes, int(found[0].last_updated_in_seconds * 1e9)
    st = where.stat()
    return st.st_size, st.st_mtime_ns


def iter_tree(url: str) -> Iterator[tuple[str, tuple[int, int]]]:
    """Every object under the prefix ``url``: ``(path relative to url, (size, mtime ns))``;
    keys ending in "/" (folder markers) with their "/". One at a time as the listing's pages
    arrive: a store's Beam FileSystem ``_list``s a prefix (``match`` collects it in a list)."""
    prefix = url + "/"
    if url.startswith("s3://"):
        for path, found_size, seconds in s3.listing(prefix, options_for(url), url):
            if len(path) > len(prefix):
                yield path[len(prefix) :], (found_size, int(seconds * 1e9))
        return
    with _remote(url, "list the objects under it", InputError):
        fs = _system(url)
        listed = fs.match([prefix + "**"])[0].metadata_list if fs.has_dirs() else fs._list(prefix)
        for m in listed:
            if m.path.startswith(prefix) and len(m.path) > len(prefix):
                yield m.path[len(prefix) :], (m.size_in_bytes, int(m.last_updated_in_seconds * 1e9))


class Folder:
    """OUT: a local folder or an object-store prefix, holding files by name (a name may have
    one "/", as in ``.imgrec-journal.d/x.json``)."""

    def __init__(self, where: Location) -> None:
        self.where = where
        self.is_url = isinstance(where, str)

    def __str__(self) -> str:
        return str(self.where)

    def at(self, name: str) -> Location:
        return join(self.where, name)

    def _all(self) -> list[tuple[str, tuple[int, int]]]:
        assert isinstance(self.where, str)
        return list(iter_tree(self.where))

    def is_empty(self, ignore: Sequence[str] = ()) -> bool:
        """Nothing in it but the names in ``ignore``."""
        if isinstance(self.where, Path):
            if not self.where.is_dir():
                return True
            return not any(p.name not in ignore for p in self.where.iterdir())
        return not [rel for rel, _ in self._all() if rel.split("/")[0] not in ignore]

    def files(self) -> list[str]:
        """Names of the files directly inside."""
        if isinstance(self.where, Path):
            if not self.where.is_dir():
                return []
            return sorted(p.name for p in self.where.iterdir() if p.is_file())
        return sorted(rel for rel, _ in self._all() if "/" not in rel)

    def size(self, name: str) -> int | None:
        """The file's size, None if there is no such file."""
        return size(self.at(name))

    def read_if_present(self, name: str) -> bytes | None:
        """The file's bytes, None if there is no such file (or folder)."""
        where = self.at(name)
        if isinstance(where, Path):
            try:
                return where.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        try:
            return self.read(name)
        except FileNotFoundError:
            return None

    def read(self, name: str) -> bytes:
        with _remote(self.at(name), "read it"), open_read(self.at(name)) as f:
            return f.read()

    def sha256(self, name: str) -> str:
        with _remote(self.at(name), "read it"), open_read(self.at(name)) as f:
            return stream_sha256(f)

    def make(self) -> None:
        """Create the folder (object stores have none to create)."""
        if isinstance(self.where, Path):
            self.where.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        with self.open_write(name) as f:
            f.write(data)

    def put(self, name: str, local: Path) -> None:
        """Copy the local file ``local`` in as ``name``."""
        with self.open_write(name) as f, open(local, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)

    @contextlib.contextmanager
    def open_write(self, name: str) -> Iterator[BinaryIO]:
        """Write the file ``name``: it appears, whole, when the block ends without error."""
        where = self.at(name)
        if isinstance(where, Path):
            where.parent.mkdir(exist_ok=True)
            with atomic_file(where) as f:
                yield f
            return
        if where.startswith("s3://"):
            options = options_for(where)
            with tempfile.TemporaryFile() as spool:  # uploaded whole, or not at all
                yield spool
                s3.upload(where, spool, options)
            return
        from apache_beam.io.filesystem import CompressionTypes

        # Written under a temporary name and renamed (a copy inside the store), as locally:
        # an upload cannot be cancelled, and a writer dropped on an error may still finish
        # its upload when it is garbage-collected.
        head, tail = posixpath.split(name)
        tmp = str(self.at(posixpath.join(head, f".{tail}.{secrets.token_hex(8)}.incomplete")))
        fs = _system(where)
        with _remote(where, "write it"):
            f = fs.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED)
        yield f
        with _remote(where, "write it"):
            f.close()
            fs.rename([tmp], [where])

    def delete(self, name: str) -> None:
        """Remove the file ``name`` if it is there."""
        where = self.at(name)
        if isinstance(where, Path):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                where.unlink()
        elif where.startswith("s3://"):
            s3.delete([where], options_for(where))  # S3 deletes what is gone without an error
        elif self.size(name) is not None:
            with _remote(where, "delete it"):
                _system(where).delete([where])

    def remove_incomplete(self) -> None:
        """Remove the temporary files of writes that did not finish (a killed run's)."""
        if isinstance(self.where, Path):
            for p in self.where.glob(".*.incomplete"):
                p.unlink()
            return
        for name in self.files():
            if name.startswith(".") and name.endswith(".incomplete"):
                self.delete(name)

    def delete_tree(self, name: str) -> None:
        """Remove the folder ``name`` (a prefix, on object stores) and all it holds."""
        where = self.at(name)
        if isinstance(where, Path):
            shutil.rmtree(where, ignore_errors=True)
            return
        prefix = name + "/"
        urls = [str(self.at(rel)) for rel, _ in self._all() if rel.startswith(prefix)]
        if urls and where.startswith("s3://"):
            s3.delete(urls, options_for(where))
        elif urls:
            with _remote(where, "delete what it holds"):
                _system(urls[0]).delete(urls)


def same_place(a: Location, b: Location) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return os.path.normpath(a.resolve()) == os.path.normpath(b.resolve())
