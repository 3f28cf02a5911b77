"""An in-process S3 (moto) for the object-store tests: the bucket, what is in it, and a Beam
pack that reaches it."""

from __future__ import annotations

from dataclasses import replace

import fixtures

BUCKET = "imgrec-test"


# The files that name SRC (its URL or path), so differ between a bucket and a local pack.
NAMES_SOURCE = ("manifest.json", "dataset_info.json")


S3_DIRECT = (*fixtures.DIRECT, "s3_region_name=us-east-1")


def objects(s3, prefix: str) -> dict[str, bytes]:
    """Every object under the prefix, by name relative to it."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {
        o["Key"][len(prefix) + 1 :]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def s3_beam_pack(src, out, opts, **kwargs):
    return fixtures.beam_pack(src, out, replace(opts, beam_options=S3_DIRECT), **kwargs)
