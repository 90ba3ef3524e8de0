"""The zero-copy multipart parser, checked against python-multipart on many forms."""

from __future__ import annotations

import random

import pytest
from python_multipart.multipart import MultipartParser

from litserve.worker.forms import FormError, MemoryFile, options, parse_form, split_multipart


def _reference(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    parts: list[tuple[dict[str, str], bytes]] = []
    cur: dict = {}

    def begin() -> None:
        cur.update(h=[], f=b"", v=b"", d=b"")

    def field(d: bytes, a: int, b: int) -> None:
        cur["f"] += d[a:b]

    def value(d: bytes, a: int, b: int) -> None:
        cur["v"] += d[a:b]

    def header_end() -> None:
        cur["h"].append((cur["f"].decode().lower(), cur["v"].decode().strip()))
        cur["f"], cur["v"] = b"", b""

    def data(d: bytes, a: int, b: int) -> None:
        cur["d"] += d[a:b]

    def end() -> None:
        parts.append((dict(cur["h"]), cur["d"]))

    parser = MultipartParser(boundary, {"on_part_begin": begin, "on_header_field": field,
                                        "on_header_value": value, "on_header_end": header_end,
                                        "on_part_data": data, "on_part_end": end})
    parser.write(body)
    parser.finalize()
    return parts


def _form(rng: random.Random, boundary: bytes) -> bytes:
    out = [b"preamble to ignore\r\n"] if rng.random() < 0.3 else []
    for i in range(rng.randint(1, 5)):
        size = rng.choice([0, 1, 7, 100, 5000])
        payload = bytes(rng.randrange(256) for _ in range(size))
        if rng.random() < 0.5:  # content that looks almost like a boundary
            payload += b"\r\n--" + boundary[:-1] + b"x"
        disp = f'form-data; name="f{i}"'
        if rng.random() < 0.5:
            disp += f'; filename="file {i}.bin"'
        out.append(b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode()
                   + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n")
    out.append(b"--" + boundary + b"--\r\nepilogue")
    return b"".join(out)


@pytest.mark.parametrize("seed", range(40))
def test_parts_match_python_multipart(seed):
    rng = random.Random(seed)
    boundary = b"----b" + str(rng.randrange(10**9)).encode()
    body = _form(rng, boundary)
    ours = [(h, bytes(v)) for h, v in split_multipart(memoryview(body), boundary)]
    start = body.index(b"--" + boundary)  # python-multipart does not skip a preamble
    assert ours == _reference(body[start:], boundary)


def test_form_fields_and_zero_copy_files():
    body = (b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\ncat\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a \\"q\\".bin"'
            b'\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--xyz--\r\n')
    buf = bytearray(body)
    form = parse_form(memoryview(buf), "multipart/form-data; boundary=xyz")
    assert form["name"] == "cat"
    upload = form["file"]
    assert upload.filename == 'a "q".bin' and upload.size == 3
    assert upload.file.read() == b"\x00\x01\x02"
    view = upload.file.getbuffer()
    buf[body.index(b"\x00\x01\x02")] = 9  # change the body under the parsed form
    assert bytes(view) == b"\x09\x01\x02", "file parts are views of the body, not copies"


def test_part_without_headers_and_urlencoded():
    parts = split_multipart(memoryview(b"--b\r\n\r\nraw\r\n--b--"), b"b")
    assert [(h, bytes(v)) for h, v in parts] == [({}, b"raw")]
    form = parse_form(b"a=1&b=two+words&c=", "application/x-www-form-urlencoded")
    assert list(form.multi_items()) == [("a", "1"), ("b", "two words"), ("c", "")]


@pytest.mark.parametrize(("body", "needle"), [
    (b"no boundary here", "does not contain its boundary"),
    (b"--b\r\nContent-Disposition: form-data; name=x\r\n", "headers are not terminated"),
    (b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\nvalue", "not terminated by its"),
    (b"--bjunk", "not followed by CRLF"),
])
def test_malformed_multipart_names_the_problem(body, needle):
    with pytest.raises(FormError, match=needle):
        split_multipart(memoryview(body), b"b")


def test_missing_boundary_parameter():
    with pytest.raises(FormError, match="without a boundary"):
        parse_form(b"", "multipart/form-data")


def test_memory_file_reads_seeks_and_readinto():
    f = MemoryFile(memoryview(b"0123456789"))
    assert f.read(3) == b"012" and f.tell() == 3
    out = bytearray(4)
    assert f.readinto(out) == 4 and out == b"3456"
    f.seek(-2, 2)
    assert f.read() == b"89" and f.read() == b""
    f.seek(0)
    assert f.read(100) == b"0123456789"


def test_options_parsing():
    assert options('form-data; name="a;b"; filename=x.bin') == (
        "form-data", {"name": "a;b", "filename": "x.bin"})
    assert options("Multipart/Form-Data; Boundary=abc") == ("multipart/form-data",
                                                            {"boundary": "abc"})
