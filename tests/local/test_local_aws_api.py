"""The local AWS API the tests share (one moto server a session): every test that asks for it finds it empty."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.s3 import s3_client, upload


@pytest.mark.parametrize("turn", ["one", "two"])
def test_each_test_finds_the_server_empty_whatever_ran_before(moto_url, moto_server_url, turn):
    assert moto_url == moto_server_url  # the same server for the whole session: started once
    client = s3_client(moto_url)
    assert client.list_buckets()["Buckets"] == []  # the other turn's bucket, whichever ran first, is gone
    client.create_bucket(Bucket="input")  # the same name each turn: a leftover would make it already exist
    body = b"label,text\nx,a river\n"
    etag = hashlib.md5(body).hexdigest()  # noqa: S324 (S3's ETag of a single-part upload is its MD5)
    assert upload(client, "incoming/a.csv", body) == {"bucket": "input", "key": "incoming/a.csv", "version_id": "",
                                                      "etag": etag}  # fmt: skip
