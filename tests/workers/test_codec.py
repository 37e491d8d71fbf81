from __future__ import annotations

import pytest

from workers.codec import JSONValue, MalformedJob, decode_job, encode_job, member_raw


def test_encode_job_writes_node_resque_bytes() -> None:
    raw = encode_job("math", "add", [1, 2.0, "é/x", {"n": None}, []])
    assert raw == '{"class":"add","queue":"math","args":[1,2,"é/x",{"n":null},[]]}'.encode()


def test_a_job_of_plain_arguments_is_written_byte_for_byte_as_any_other() -> None:
    args: list[JSONValue] = [{"id": "bitcoin:ab:0", "minor_units": 150000, "ok": True, "tag": None}, "é"]
    assert encode_job("q", "pay", args, plain=True) == encode_job("q", "pay", args)
    # Only a float tells them apart: plain arguments are written as they are, floats included.
    assert encode_job("q", "pay", [2.0], plain=True) == b'{"class":"pay","queue":"q","args":[2.0]}'


def test_decode_job_reads_ruby_format_without_queue() -> None:
    job = decode_job(b'{"class":"MyJob","args":[1,"a"]}')
    assert (job.class_name, job.args, job.queue) == ("MyJob", [1, "a"], None)


def test_decode_job_reads_scheduler_key_order() -> None:
    job = decode_job(b'{"class":"MyJob","args":[],"queue":"q","custom_job_class":"X"}')
    assert (job.class_name, job.args, job.queue) == ("MyJob", [], "q")


def test_decode_job_wraps_non_array_args() -> None:
    assert decode_job(b'{"class":"a","args":{"k":1}}').args == [{"k": 1}]
    assert decode_job(b'{"class":"a"}').args == []


@pytest.mark.parametrize("raw", [b"nope", b"[1]", b'{"args":[]}', b'{"class":""}'])
def test_decode_job_refuses_non_jobs(raw: bytes) -> None:
    with pytest.raises(MalformedJob):
        decode_job(raw)


def test_member_raw_returns_exact_bytes() -> None:
    raw = b'{"a" : "x,\\"payload\\":1", "payload": {"class":"c", "args":[1.0]} ,"z":[]}'
    assert member_raw(raw, "payload") == b'{"class":"c", "args":[1.0]}'
    assert member_raw(raw, "z") == b"[]"
    assert member_raw(raw, "missing") is None
