"""Per-image fields from Hugging Face imagefolder's metadata.jsonl and metadata.csv: each
column's one type, each image's values, and every refusal naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgrec.core.errors import InputError
from imgrec.packing.annotations import Annotated, fields


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(folder: Path, *rows: object) -> Path:
    return write(folder / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def test_jsonl_columns_and_values(tmp_path):
    meta = jsonl(
        tmp_path,
        # As the datasets docs show it, with more columns.
        {"file_name": "0001.png", "text": "a golden retriever", "score": 1, "bbox": [1, 2.5]},
        {"file_name": "train/0002.png", "text": "a german shepherd", "score": 2.5, "bbox": []},
        {"score": 3, "bbox": [0], "file_name": "./0003.png", "text": "é\u2028"},
    )
    source = fields.read(meta)
    assert (source.kind, source.where, source.classes) == ("fields", str(meta), {})
    assert source.columns == {"text": "str", "score": "float", "bbox": "floats"}
    assert list(source.listed()) == ["0001.png", "train/0002.png", "0003.png"]
    assert source.lookup("0001.png") == Annotated(
        fields=(("text", "a golden retriever"), ("score", 1.0), ("bbox", (1.0, 2.5))),
        where=str(meta),
    )
    assert source.lookup("train/0002.png") == Annotated(
        fields=(("text", "a german shepherd"), ("score", 2.5), ("bbox", ())), where=str(meta)
    )
    third = source.lookup("0003.png")
    assert third is not None and third.fields == (
        ("text", "é\u2028"),
        ("score", 3.0),
        ("bbox", (0.0,)),
    )
    assert isinstance(dict(third.fields)["score"], float)
    assert source.lookup("0004.png") is None
    assert Annotated.from_json(third.to_json()) == third


def test_jsonl_booleans_are_integers_and_the_folder_finds_its_file(tmp_path):
    meta = jsonl(
        tmp_path,
        {"file_name": "a.png", "keep": True, "id": 7, "name-1.x": "a"},
        {"file_name": "b.png", "keep": False, "id": -(2**63), "name-1.x": "b"},
    )
    meta.write_text(meta.read_text() + "\n\n")  # blank lines are no rows
    source = fields.read(tmp_path)
    assert source.where == str(meta)
    assert source.columns == {"keep": "int", "id": "int", "name-1.x": "str"}
    got = source.lookup("b.png")
    assert got is not None and got.fields == (("keep", 0), ("id", -(2**63)), ("name-1.x", "b"))


def test_csv_types_from_all_cells_as_imagefolder_reads_them(tmp_path):
    meta = tmp_path / "metadata.csv"
    # Saved by a spreadsheet: a BOM, CRLF line ends, a quoted cell over two lines.
    meta.write_bytes(
        "file_name,additional_feature,count,ratio,box,code\r\n"
        '0001.png,"a first value, of a text feature",3,1,"[1.5, 2]",007\r\n'
        '0002.png,"two\r\nlines",4,0.5,[],A7\r\n'
        "0003.png,42,-5,1e3,[0],8\r\n".encode("utf-8-sig")
    )
    source = fields.read(meta)
    assert source.columns == {
        "additional_feature": "str",
        "count": "int",
        "ratio": "float",
        "box": "floats",
        "code": "str",
    }
    assert source.lookup("0001.png") == Annotated(
        fields=(
            ("additional_feature", "a first value, of a text feature"),
            ("count", 3),
            ("ratio", 1.0),
            ("box", (1.5, 2.0)),
            ("code", "007"),  # a str column keeps its cells as written
        ),
        where=str(meta),
    )
    got = source.lookup("0002.png")
    assert got is not None and dict(got.fields)["additional_feature"] == "two\r\nlines"
    got = source.lookup("0003.png")
    assert got is not None and got.fields == (
        ("additional_feature", "42"),
        ("count", -5),
        ("ratio", 1000.0),
        ("box", (0.0,)),
        ("code", "8"),
    )
    assert list(source.listed()) == ["0001.png", "0002.png", "0003.png"]
    # nan, inf and numbers beyond int64 are text in CSV, as their column then is.
    write(meta, "file_name,a,b\nx.png,nan,99999999999999999999\ny.png,1,2\n")
    source = fields.read(meta)
    assert source.columns == {"a": "str", "b": "str"}
    assert source.lookup("y.png") == Annotated(fields=(("a", "1"), ("b", "2")), where=str(meta))


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ['{"file_name": "a.png"}', '{"file_name": "b.png",}'],
            "line 2 is not valid JSON (Expecting property name enclosed in double quotes,"
            " column 23)",
        ),
        (['{"file_name": "a.png"}', '["b.png"]'], 'line 2 is not a JSON object ({"file_name":'),
        (['{"file_name": "a.png"}', '{"text": "b"}'], "line 2 has no file_name"),
        (['{"file_name": 3}'], "line 1 has file_name 3, not a file's name"),
        (
            ['{"file_name": "../a.png"}'],
            "line 1: file_name '../a.png' is outside the metadata file's folder; name images by"
            " their path relative to it",
        ),
        (
            ['{"file_name": "a.png"}', '{"file_name": "b.png"}', '{"file_name": "./a.png"}'],
            "file_name './a.png' is on line 1 and on line 3; one line per image",
        ),
        (
            ['{"file_name": "a.png", "t": "x"}', '{"file_name": "b.png", "t": 2}'],
            "column 't' holds strings (from line 1), but line 2 has an integer; a column holds"
            " one type",
        ),
        (
            ['{"file_name": "a.png", "s": 1}', '{"file_name": "b.png", "s": 2.5}', ""]
            + ['{"file_name": "c.png", "s": [1]}'],
            "column 's' holds numbers (from line 1), but line 4 has a list of numbers; a column"
            " holds one type",
        ),
        (
            ['{"file_name": "a.png", "t": "x"}', '{"file_name": "b.png", "t": null}'],
            "line 2: 't' is null; missing values are not packed (yet): give every image a value,"
            " or leave the column out",
        ),
        (
            ['{"file_name": "a.png", "t": "x"}', '{"file_name": "b.png"}'],
            "line 2 has no 't' (line 1 has it); give every image a value: missing values are not"
            " packed (yet)",
        ),
        (
            ['{"file_name": "a.png", "objects": {"bbox": [[1, 2, 3, 4]]}}'],
            "line 1: 'objects' is a JSON object; nested fields are not packed (yet)",
        ),
        (
            ['{"file_name": "a.png", "tags": ["dog", "ball"]}'],
            "line 1: 'tags' is a list of other things than finite numbers; only lists of numbers"
            " are packed (yet)",
        ),
        (['{"file_name": "a.png", "s": NaN}'], "line 1: 's' is nan, not a finite number"),
        (
            ['{"file_name": "a.png", "n": 9223372036854775808}'],
            "line 1: 'n' is 9223372036854775808, beyond the 64-bit integers a record holds",
        ),
        (
            ['{"file_name": "a.png", "my caption": "x"}'],
            "column 'my caption' (line 1): a field's name may hold only letters, digits, _, -"
            " and .; rename it",
        ),
        (['{"file_name": "a.png", "": 1}'], "column '' (line 1): a field's name may hold only"),
        ([], "lists no images (no rows with a file_name)"),
    ],
)
def test_jsonl_that_cannot_be_fields_is_refused_naming_the_line(tmp_path, lines, message):
    meta = write(tmp_path / "metadata.jsonl", "".join(line + "\n" for line in lines))
    with pytest.raises(InputError) as e:
        fields.read(meta)
    assert str(e.value).startswith(f"{meta}: {message}")


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,text\na.png,x\n", "the header row (line 1) has no file_name column; its columns:"),
        ("file_name,t,t\na.png,x,y\n", "the header row (line 1) names a column twice"),
        ("file_name,t\na.png,x\nb.png\n", "line 3 has 1 cells, the header 2"),
        (
            "file_name,t\na.png,x\nb.png,\n",
            "line 3: 't' is empty; missing values are not packed (yet): give every image a value",
        ),
        ("file_name,t u\na.png,x\n", "column 't u' (line 1): a field's name may hold only"),
        ("file_name,t\na.png,x\na.png,y\n", "file_name 'a.png' is on line 2 and on line 3"),
        ('file_name,t\na.png,"x\n', "line 2: unexpected end of data"),
        ("file_name,t\n", "lists no images"),
    ],
)
def test_csv_that_cannot_be_fields_is_refused_naming_the_line(tmp_path, text, message):
    meta = write(tmp_path / "metadata.csv", text)
    with pytest.raises(InputError) as e:
        fields.read(meta)
    assert str(e.value).startswith(f"{meta}: {message}")


def test_files_that_are_not_metadata_text(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_bytes(b"file_name,t\na.png,caf\xe9\n")
    with pytest.raises(InputError) as e:
        fields.read(meta)
    assert str(e.value) == f"{meta}: not UTF-8 text (byte 21); save the metadata file as UTF-8"
    jsonl(tmp_path, {"file_name": "a.png"})
    with pytest.raises(InputError) as e:
        fields.read(tmp_path)
    assert str(e.value) == (
        f"{tmp_path}: both metadata.jsonl and metadata.csv; keep one (per-image fields come"
        " from one of them)"
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no metadata file"):
        fields.read(tmp_path / "empty")
    other = write(tmp_path / "metadata.json", "[]")
    with pytest.raises(InputError, match="from a .jsonl or .csv metadata file"):
        fields.read(other)
    deep = write(tmp_path / "deep" / "metadata.jsonl", '{"file_name": "a", "t": ' + "[" * 10**5)
    with pytest.raises(InputError, match="line 1 "):
        fields.read(deep)
