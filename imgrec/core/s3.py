"""imgrec's own calls to ``s3://``: reads, listings, uploads and deletes through one boto3
client per thread, each call bounded in time.

Beam's S3 filesystem retries a call that fails (an endpoint that refuses connections or
never answers) with growing waits for many minutes, on top of boto3's own retries and its
60 s timeouts. Here each HTTP request gives up after ``CALL_TIMEOUT`` s (or the deadline,
if shorter), boto3 makes one attempt, and imgrec retries what may pass (refused or reset
connections, timeouts, 5xx, throttling) with growing waits until ``IMGREC_S3_DEADLINE``
seconds have passed since the call began; then one ``Error:`` names the URL and says what to
do. What cannot pass by waiting (no such key, no such bucket, access denied) fails at once.

The client is made from the same Beam options (``s3_access_key_id``, ``s3_endpoint_url``,
``s3_region_name``, ...) as Beam's, and boto3's own sources (``AWS_ENDPOINT_URL``, AWS's
files) still apply.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

from .errors import ImgrecError, InputError, OutputError

DEADLINE_VARIABLE = "IMGREC_S3_DEADLINE"
DEFAULT_DEADLINE = 120.0  # seconds a call keeps retrying: an endpoint restarting comes back
CALL_TIMEOUT = 20.0  # seconds to connect, and between bytes of an answer: a frozen server
FIRST_WAIT, LONGEST_WAIT = 0.5, 10.0  # the waits between attempts double, up to this
PART = 64 << 20  # bytes of an upload's parts; a file this size or less is one PutObject
READ_BUFFER = 1 << 20  # what a read asks the stream for at once
_TRANSIENT_CODES = {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"}
_TRANSIENT_CODES |= {"Throttling", "ThrottlingException", "RequestLimitExceeded"}
_log = logging.getLogger(__name__)
T = TypeVar("T")


def deadline() -> float:
    """Seconds a call may keep retrying: ``IMGREC_S3_DEADLINE``, or 120."""
    text = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DEADLINE
    seconds = float(text) if re.fullmatch(r"\d+(\.\d*)?|\.\d+", text) else 0.0
    if not seconds > 0:
        raise InputError(f"{DEADLINE_VARIABLE}={text} is not a number of seconds above 0")
    return seconds


# One client per thread (boto3 sessions are not thread-safe to make clients from), and per
# process: a client made before a fork is not used after it. forget() drops them all.
_per_thread = threading.local()
_generation = [0]


def forget() -> None:
    """Make new clients from here on (the options, or the environment, changed)."""
    _generation[0] += 1


def client(options: Any) -> Any:
    """This thread's boto3 S3 client for Beam's ``options`` (a PipelineOptions or None)."""
    timeout = min(CALL_TIMEOUT, deadline())
    key = (os.getpid(), _generation[0], id(options), timeout)
    held = getattr(_per_thread, "held", None)
    if held is not None and held[0] == key and held[1] is options:
        return held[2]
    import boto3
    from apache_beam.io.aws.clients.client_options import get_client_kwargs
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options
    from botocore.config import Config

    settings = options if options is not None else PipelineOptions([])
    once = {"total_max_attempts": 1, "mode": "standard"}  # imgrec retries: see call()
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries=once)
    made = boto3.session.Session().client(
        "s3",
        api_version=settings.view_as(S3Options).s3_api_version,
        config=config,
        **get_client_kwargs(settings, S3Options),
    )
    _per_thread.held = (key, options, made)
    return made


def check_credentials(options: Any, url: str) -> None:
    """No AWS credentials at all: say so at once (Beam would retry for about ten minutes)."""
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options

    if isinstance(options, PipelineOptions) and options.view_as(S3Options).s3_access_key_id:
        return
    import boto3

    if boto3.session.Session().get_credentials() is None:
        raise InputError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or"
            " AWS_PROFILE), or pass --beam-option s3_access_key_id=... and s3_secret_access_key",
            url,
        )


def split(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URL."""
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def _code(e: Exception) -> tuple[str, int]:
    response = getattr(e, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code, int(status)


def _transient(e: Exception) -> bool:
    from botocore import exceptions as boto

    if isinstance(e, boto.ClientError):
        code, status = _code(e)
        return status >= 500 or status == 429 or code in _TRANSIENT_CODES
    cut = (boto.ConnectionError, boto.HTTPClientError, boto.IncompleteReadError)
    return isinstance(e, cut) or isinstance(e, TimeoutError | ConnectionError)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def call(
    url: str,
    doing: str,
    attempt: Callable[[Any], T],
    options: Any,
    error: type[ImgrecError] = InputError,
) -> T:
    """``attempt(client)``, retried while it fails in a way that may pass, until the deadline.

    A missing key is FileNotFoundError; every other failure is ``error`` in one line:
    ``URL: cannot DOING (why...)``."""
    from botocore.exceptions import ClientError

    limit = deadline()
    end = time.monotonic() + limit
    wait = FIRST_WAIT
    while True:
        s3 = client(options)
        try:
            return attempt(s3)
        except (ImgrecError, FileNotFoundError):
            raise
        except Exception as e:
            if not _transient(e):
                if isinstance(e, ClientError):
                    _refuse(url, doing, e, error)
                raise error(f"{url}: cannot {doing} ({_first_line(e)})") from None
            left = end - time.monotonic()
            if left <= 0:
                endpoint = s3.meta.endpoint_url
                raise error(
                    f"{url}: cannot {doing} (no answer from {endpoint} within {limit:g} s:"
                    f" {_first_line(e)}; check that the endpoint is up and reachable, or set"
                    f" {DEADLINE_VARIABLE}=SECONDS to wait longer)"
                ) from None
            _log.debug("%s: %s failed (%s); again in %.1f s", url, doing, e, min(wait, left))
            time.sleep(min(wait, left))
            wait = min(wait * 2, LONGEST_WAIT)


def _refuse(url: str, doing: str, e: Exception, error: type[ImgrecError]) -> None:
    code, status = _code(e)
    if code in ("NoSuchKey", "404", "NotFound"):
        raise FileNotFoundError(url)
    bucket = split(url)[0]
    if code == "NoSuchBucket":
        why = f"the bucket {bucket} does not exist; create it, or correct the URL"
    elif status == 403:
        why = f"access denied: {_first_line(e)}; check the credentials and {bucket}'s policy"
    else:
        why = _first_line(e)
    raise error(f"{url}: cannot {doing} ({why})") from None


def listing(
    prefix_url: str, options: Any, named: str | None = None
) -> Iterator[tuple[str, int, float]]:
    """``(url, size, modification time in s)`` of every object whose URL starts with
    ``prefix_url``, in key order, page by page (the time as Beam's filesystem gives it).
    An error names ``named`` (what the user gave), or the prefix."""
    bucket, prefix = split(prefix_url)
    token: dict[str, str] = {}
    while True:

        def attempt(s3: Any, more: dict[str, str] = token) -> Any:
            return s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **more)

        page = call(named or prefix_url, "list the objects under it", attempt, options)
        for o in page.get("Contents", []):
            yield f"s3://{bucket}/{o['Key']}", int(o["Size"]), _seconds(o["LastModified"])
        following = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not following:
            return
        token = {"ContinuationToken": following}


def match(pattern: str, options: Any) -> list[str]:
    """The URLs a glob pattern matches, as Beam's filesystems match them."""
    from apache_beam.io.filesystem import FileSystem

    wanted = re.compile(FileSystem.translate_pattern(pattern))
    prefix = re.split(r"[\[*?]", pattern, maxsplit=1)[0]
    return [url for url, _, _ in listing(prefix, options, pattern) if wanted.match(url)]


def _seconds(updated: Any) -> float:
    # As Beam's s3io computes it, so that a listing here and one by Beam agree.
    return float(time.mktime(updated.timetuple()) - time.timezone + updated.microsecond / 1e6)


def stat(url: str, options: Any) -> tuple[int, float]:
    """``(size, modification time in s)``; FileNotFoundError if there is no such object."""
    bucket, key = split(url)
    one = {"Bucket": bucket, "Prefix": key, "MaxKeys": 1}  # the key itself sorts first
    page = call(url, "look it up", lambda s3: s3.list_objects_v2(**one), options)
    found = page.get("Contents", [])
    if not key or not found or found[0]["Key"] != key:
        raise FileNotFoundError(url)
    return int(found[0]["Size"]), _seconds(found[0]["LastModified"])


class _Stream(io.RawIOBase):
    """An object read as a seekable stream: one GET from the position on, reopened where it
    stopped when the connection fails, and after a seek."""

    def __init__(self, url: str, options: Any) -> None:
        self.url, self.options = url, options
        self.bucket, self.key = split(url)
        self.pos = 0
        self.size: int | None = None
        self.body: Any = None
        self._get()  # a missing object is FileNotFoundError now, not at the first read

    def _get(self) -> None:
        call(self.url, "read it", self._open_at, self.options)

    def _open_at(self, s3: Any) -> None:
        """One GET from ``pos`` on (from 0 with no range: S3 refuses one on an empty object)."""
        ranged = {"Range": f"bytes={self.pos}-"} if self.pos else {}
        try:
            answer = s3.get_object(Bucket=self.bucket, Key=self.key, **ranged)
        except Exception as e:
            if _code(e)[0] != "InvalidRange":
                raise
            self.body, self.size = None, self.pos if self.size is None else self.size
            return
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        self.size = int(total) if total.isdigit() else self.pos + int(answer["ContentLength"])
        self.body = answer["Body"]

    def _drop(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def _chunk(self, n: int) -> bytes:
        def attempt(s3: Any) -> bytes:
            if self.body is None:
                if self.size is not None and self.pos >= self.size:
                    return b""
                self._open_at(s3)
                if self.body is None:
                    return b""
            try:
                return bytes(self.body.read(n))
            except Exception:
                self._drop()  # the next attempt reopens at self.pos
                raise

        data = call(self.url, "read it", attempt, self.options)
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self._chunk(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self._chunk(READ_BUFFER), b""))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if self.size is None:
                self.size = stat(self.url, self.options)[0]
            offset += self.size
        elif whence == io.SEEK_CUR:
            offset += self.pos
        if offset < 0:
            raise OSError(f"{self.url}: negative seek position {offset}")
        if offset != self.pos:
            self._drop()
            self.pos = offset
        return self.pos

    def close(self) -> None:
        self._drop()
        super().close()


def read_range(url: str, offset: int, size: int, options: Any) -> bytes:
    """``size`` bytes (1 or more) of the object from ``offset``: one ranged GET."""
    ranged = dict(zip(("Bucket", "Key"), split(url), strict=True))
    ranged["Range"] = f"bytes={offset}-{offset + size - 1}"
    return call(url, "read it", lambda s3: bytes(s3.get_object(**ranged)["Body"].read()), options)


def open_read(url: str, options: Any) -> BinaryIO:
    """The object ``url`` open for reading (streamed, seekable)."""
    return io.BufferedReader(_Stream(url, options), READ_BUFFER)


def upload(url: str, data: BinaryIO, options: Any) -> None:
    """Store what ``data`` holds (a local file, read from its start) as the object ``url``.

    An object appears only once its PutObject or multipart upload is complete, so this is
    atomic as it stands: no temporary name is needed."""
    bucket, key = split(url)
    length = data.seek(0, io.SEEK_END)

    def put(s3: Any) -> None:
        data.seek(0)
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    if length <= PART:
        call(url, "write it", put, options, OutputError)
        return
    started = call(
        url,
        "write it",
        lambda s3: s3.create_multipart_upload(Bucket=bucket, Key=key),
        options,
        OutputError,
    )
    ident = started["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, length, PART), 1):
            data.seek(start)
            block = data.read(PART)

            def part(s3: Any, b: bytes = block, n: int = number) -> Any:
                return s3.upload_part(Bucket=bucket, Key=key, UploadId=ident, PartNumber=n, Body=b)

            answer = call(url, "write it", part, options, OutputError)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        call(
            url,
            "write it",
            lambda s3: s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=ident, MultipartUpload={"Parts": parts}
            ),
            options,
            OutputError,
        )
    except BaseException:
        try:  # best effort, one attempt: the store drops abandoned parts by its own rules
            client(options).abort_multipart_upload(Bucket=bucket, Key=key, UploadId=ident)
        except Exception as e:
            _log.debug("%s: the upload's parts were not removed: %s", url, e)
        raise


def delete(urls: list[str], options: Any) -> None:
    """Remove the objects (all in one bucket); one that is already gone is no error."""
    bucket = split(urls[0])[0]
    for start in range(0, len(urls), 1000):  # DeleteObjects takes up to 1000 keys
        batch = [{"Key": split(u)[1]} for u in urls[start : start + 1000]]

        def attempt(s3: Any, b: list[dict[str, str]] = batch) -> Any:
            return s3.delete_objects(Bucket=bucket, Delete={"Objects": b, "Quiet": True})

        answer = call(urls[start], "delete it", attempt, options, OutputError)
        failed = answer.get("Errors", [])
        if failed:
            first = failed[0]
            raise OutputError(
                f"s3://{bucket}/{first.get('Key')}: cannot delete it"
                f" ({first.get('Code')}: {first.get('Message')})"
            )
