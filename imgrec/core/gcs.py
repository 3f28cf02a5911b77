"""Ranged reads of ``gs://`` objects: one GET of the bytes asked for, through the
``google-cloud-storage`` client that Beam's GCS filesystem is built on (``imgrec[gcs]``),
with the credentials Beam's pipeline options give (``--no_auth``, service accounts, or the
application default). Beam's own reader fetches an object in large chunks, and each open
asks for the object's metadata first: for one record of a shard, that is many times the
bytes and one more request.

One client per thread and process (forked DataLoader workers make their own), each call
bounded by ``CALL_TIMEOUT`` seconds per request and the client's own retries.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .errors import InputError

CALL_TIMEOUT = 20.0  # seconds to connect, and between bytes of an answer

_per_thread = threading.local()


def split(url: str) -> tuple[str, str]:
    """``gs://bucket/key`` -> (bucket, key)."""
    bucket, _, key = url[len("gs://") :].partition("/")
    return bucket, key


def _client(options: Any) -> Any:
    """This thread's client for these pipeline options (``storage.configure`` makes new
    ones), made again in a forked process. The options are held with it, so that their
    ``id`` names them as long as the client is kept."""
    key = (os.getpid(), id(options))
    held = getattr(_per_thread, "client", None)
    if held is not None and held[0] == key:
        return held[1]
    from apache_beam.io.gcp.gcsio import create_storage_client
    from apache_beam.options.pipeline_options import PipelineOptions

    settings = options if options is not None else PipelineOptions([])
    client = create_storage_client(settings)  # type: ignore[no-untyped-call]
    _per_thread.client = (key, client, options)
    return client


def read_range(url: str, offset: int, size: int, options: Any) -> bytes:
    """``size`` bytes of the object at ``url`` from ``offset``, in one ranged GET."""
    bucket, key = split(url)
    try:
        blob = _client(options).bucket(bucket).blob(key)
        data: bytes = blob.download_as_bytes(
            start=offset, end=offset + size - 1, checksum=None, timeout=CALL_TIMEOUT
        )
    except Exception as e:  # the client's many exception types: one line naming the URL
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot read bytes {offset}-{offset + size - 1} ({text})", url) from None
    if len(data) != size:
        raise InputError(f"asked for {size} bytes at {offset}, got {len(data)}", url)
    return data
