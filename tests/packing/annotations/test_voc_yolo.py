"""Pascal VOC XML and YOLO txt annotations: what each reader gives per image, the format's
own coordinates made continuous, and every refusal naming the file and the object or line."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import pytest

from imgrec.core.errors import InputError
from imgrec.packing.annotations import Annotated, PixelBox, voc, yolo

# As the VOC devkit writes them (VOC2012/Annotations/2007_000027.xml): children in name
# order, a person with <part>s, no <truncated>.
DEVKIT = """<annotation>
	<filename>2007_000027.jpg</filename>
	<folder>VOC2012</folder>
	<object>
		<name>person</name>
		<bndbox>
			<xmax>349</xmax>
			<xmin>174</xmin>
			<ymax>351</ymax>
			<ymin>101</ymin>
		</bndbox>
		<difficult>0</difficult>
		<pose>Unspecified</pose>
		<part>
			<bndbox>
				<xmax>271</xmax>
				<xmin>169</xmin>
				<ymax>229</ymax>
				<ymin>104</ymin>
			</bndbox>
			<name>head</name>
		</part>
	</object>
	<segmented>0</segmented>
	<size>
		<depth>3</depth>
		<height>500</height>
		<width>486</width>
	</size>
	<source>
		<annotation>PASCAL VOC2007</annotation>
		<database>The VOC2007 Database</database>
		<image>flickr</image>
	</source>
</annotation>
"""


def labelimg(filename: str, *objects: str, size: tuple[object, object] = (640, 480)) -> str:
    """An XML as labelImg writes it, with ``objects`` from ``obj``."""
    return f"""<annotation>
	<folder>images</folder>
	<filename>{filename}</filename>
	<path>/home/me/data/images/{filename}</path>
	<source>
		<database>Unknown</database>
	</source>
	<size>
		<width>{size[0]}</width>
		<height>{size[1]}</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>
{"".join(objects)}</annotation>
"""


def obj(name: str, *box: object, difficult: str = "0", truncated: str = "0") -> str:
    corners = "".join(
        f"\t\t\t<{tag}>{value}</{tag}>\n"
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=False)
    )
    return f"""	<object>
		<name>{name}</name>
		<pose>Unspecified</pose>
		<truncated>{truncated}</truncated>
		<difficult>{difficult}</difficult>
		<bndbox>
{corners}		</bndbox>
	</object>
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# VOC


def test_devkit_and_labelimg_files_give_continuous_pixel_boxes(tmp_path):
    ann = tmp_path / "Annotations"
    devkit = write(ann / "2007_000027.xml", DEVKIT)
    cat = write(
        ann / "cat.xml",
        labelimg(
            "cat.jpg", obj("cat", 1, 1, 10, 20, truncated="1"), obj("dog", 10.5, 2, 30.5, 4.25)
        ),
    )
    source = voc.read(ann)
    assert (source.kind, source.where, source.classes) == (
        "voc",
        str(ann),
        {1: "cat", 2: "dog", 3: "person"},
    )
    assert source.columns == {}
    assert sorted(source.listed()) == ["2007_000027.jpg", "cat.jpg"]
    assert source.warnings == [
        "1 object(s) have <part> boxes (VOC's person layout): parts are not packed, only the"
        " object's own box"
    ]
    assert source.lookup("2007_000027.jpg") == Annotated(
        (PixelBox(173, 100, 349, 351, 3, f"{devkit} object 1"),), 486, 500, where=str(devkit)
    )
    # xmin=1..xmax=10 covers pixels 1..10 (1-based, inclusive): x from 0 to 10.
    assert source.lookup("cat.jpg") == Annotated(
        (
            PixelBox(0, 0, 10, 20, 1, f"{cat} object 1", truncated=True),
            PixelBox(9.5, 1, 30.5, 4.25, 2, f"{cat} object 2"),
        ),
        640,
        480,
        where=str(cat),
    )
    # Found by name, whatever the image's extension; an image without an XML: nothing said.
    assert source.lookup("cat.png") == source.lookup("cat.jpg")
    assert source.lookup("mouse.jpg") is None
    assert source.lookup("sub/cat.jpg") is None


def test_xml_found_by_the_images_path_under_src_and_labels_list(tmp_path):
    ann = tmp_path / "ann"
    xml = write(ann / "train" / "a.xml", labelimg("a.jpg", obj("dog", 1, 1, 2, 2, difficult="1")))
    write(ann / "val" / "b.xml", labelimg("b.jpg", obj("zebra", 1, 1, 2, 2)))
    source = voc.read(ann, labels=["dog", "cat"])
    assert source.classes == {1: "dog", 2: "cat"}
    assert sorted(source.listed()) == ["train/a.jpg", "val/b.jpg"]
    got = source.lookup("train/a.jpg")
    assert got is not None and got.boxes == (
        PixelBox(0, 0, 2, 2, 1, f"{xml} object 1", difficult=True),
    )
    assert source.lookup("a.jpg") is None
    b = ann / "val" / "b.xml"
    assert source.lookup("val/b.jpg") == Annotated(
        where=str(b),
        problem=f"{b}: object 1's class 'zebra' is not in the labels list; add it there",
    )
    with pytest.raises(InputError, match="names a class twice"):
        voc.read(ann, labels=["dog", "dog"])


@pytest.mark.parametrize(
    "objects, problem",
    [
        (obj("cat", 1, 1, 5), "object 2's <bndbox> has no <ymax>"),
        (obj("cat", 1, "one", 5, 5), "object 2's <ymin> is 'one', not a number"),
        (obj("cat", 1, 1, "nan", 5), "object 2's <xmax> is 'nan', not a finite number"),
        (obj("cat", 1, 1, 5, "inf"), "object 2's <ymax> is 'inf', not a finite number"),
        (
            obj("cat", 5, 1, 5, 5),
            "object 2's <bndbox> is empty: xmin 5, xmax 5, ymin 1, ymax 5 (each max must be"
            " above its min)",
        ),
        (
            obj("cat", 1, 9, 5, 3),
            "object 2's <bndbox> is empty: xmin 1, xmax 5, ymin 9, ymax 3 (each max must be"
            " above its min)",
        ),
        (obj("", 1, 1, 5, 5), "object 2 has no <name>"),
        (obj("cat", 1, 1, 5, 5, difficult="yes"), "object 2's <difficult> is 'yes', not 0 or 1"),
        ("<object><name>cat</name></object>", "object 2 has no <bndbox>"),
    ],
)
def test_an_unusable_object_is_its_images_problem(tmp_path, objects, problem):
    xml = write(tmp_path / "a.xml", labelimg("a.jpg", obj("cat", 1, 1, 2, 2), objects))
    assert voc.read(tmp_path).lookup("a.jpg") == Annotated(
        where=str(xml), problem=f"{xml}: {problem}"
    )


def test_filename_and_size_checks(tmp_path):
    xml = write(tmp_path / "a.xml", labelimg("b.jpg", obj("cat", 1, 1, 2, 2)))
    source = voc.read(tmp_path)
    assert list(source.listed()) == []  # its image is not a.* nor surely b.jpg
    assert source.lookup("a.jpg") == Annotated(
        where=str(xml),
        problem=f"{xml}: <filename> is 'b.jpg', but this XML is found for image 'a.jpg' by"
        " its name; rename one of them or correct <filename>",
    )
    # A path in <filename> (some tools write one) is read for its last part; <size> 0 is
    # unknown; a size that is no whole number is the image's problem.
    write(tmp_path / "a.xml", labelimg(r"C:\data\a.jpg", obj("cat", 1, 1, 2, 2), size=(0, 0)))
    source = voc.read(tmp_path)
    assert list(source.listed()) == ["a.jpg"]
    got = source.lookup("a.jpg")
    assert got is not None and (got.width, got.height, got.problem) == (None, None, None)
    write(tmp_path / "a.xml", labelimg("a.jpg", size=(640.5, 480)))
    assert voc.read(tmp_path).lookup("a.jpg") == Annotated(
        where=str(xml), problem=f"{xml}: <size>'s <width> is '640.5', not a whole number of pixels"
    )


def test_a_file_that_is_not_a_voc_annotation_stops_the_run(tmp_path):
    bad = write(tmp_path / "x" / "bad.xml", "<annotation>\n<object>\n</annotation>\n")
    with pytest.raises(InputError) as e:
        voc.read(tmp_path / "x")
    assert str(e.value) == (
        f"{bad}: not well-formed XML at line 3 (mismatched tag); fix or remove this file"
    )
    other = write(tmp_path / "y" / "other.xml", "<svg></svg>")
    with pytest.raises(InputError) as e:
        voc.read(tmp_path / "y")
    assert str(e.value) == (
        f"{other}: the root element is <svg>, not <annotation>: not a Pascal VOC annotation;"
        " remove it from the annotations folder"
    )
    (tmp_path / "z" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="no .xml files here"):
        voc.read(tmp_path / "z")
    with pytest.raises(InputError, match="not a folder"):
        voc.read(other)


def test_entity_expansion_is_refused_quickly_and_external_entities_are_not_read(tmp_path):
    names = ["lol", *(f"lol{i}" for i in range(1, 10))]
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY {name} "{f"&{below};" * 10}">' for below, name in pairwise(names)
    )
    bomb = write(
        tmp_path / "bomb" / "a.xml",
        f'<?xml version="1.0"?>\n<!DOCTYPE a [{entities}]>\n'
        "<annotation><object><name>&lol9;</name></object></annotation>",
    )
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        voc.read(tmp_path / "bomb")
    assert time.monotonic() - started < 3
    assert str(e.value).startswith(f"{bomb}: not well-formed XML at line 3 (limit on input")
    assert "\n" not in str(e.value)

    secret = write(tmp_path / "secret.txt", "TOP-SECRET")
    ext = write(
        tmp_path / "ext" / "a.xml",
        f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n'
        "<annotation><object><name>&x;</name></object></annotation>",
    )
    with pytest.raises(InputError) as e:
        voc.read(tmp_path / "ext")
    assert str(e.value) == (
        f"{ext}: not well-formed XML at line 3 (undefined entity &x;); fix or remove this file"
    )
    assert "TOP-SECRET" not in str(e.value)


def test_segmented_files_are_said_to_have_masks_not_packed(tmp_path):
    write(tmp_path / "a.xml", labelimg("a.jpg").replace("<segmented>0", "<segmented>1"))
    write(tmp_path / "b.xml", labelimg("b.jpg"))
    source = voc.read(tmp_path)
    assert source.warnings == [
        "1 XML file(s) say <segmented>1</segmented>: their masks (SegmentationObject,"
        " SegmentationClass) are not packed yet"
    ]
    assert source.classes == {}
    got = source.lookup("b.jpg")
    assert got is not None and got.boxes == () and got.problem is None


# YOLO

DATA_YAML = """# as ultralytics' dataset files are
path: ../datasets/pets
train: images/train
val: images/val

names:
  0: cat
  1: dog
"""


def ultralytics(root: Path, labels: dict[str, str], data: str = DATA_YAML) -> Path:
    """A dataset laid out as ultralytics reads it; returns its labels/train folder."""
    write(root / "data.yaml", data)
    for rel, text in labels.items():
        write(root / "images" / "train" / rel.replace(".txt", ".jpg"), "")
        write(root / "labels" / "train" / rel, text)
    return root / "labels" / "train"


def test_ultralytics_labels_give_normalized_corners(tmp_path):
    folder = ultralytics(
        tmp_path,
        {"a.txt": "0 0.5 0.5 0.25 0.5\n\n1 0.125 0.75 0.25 0.5\n", "sub/b.txt": ""},
    )
    source = yolo.read(folder)
    assert (source.kind, source.where, source.classes) == (
        "yolo",
        str(folder),
        {0: "cat", 1: "dog"},
    )
    assert (list(source.listed()), source.columns, source.warnings) == ([], {}, [])
    txt = folder / "a.txt"
    got = source.lookup("a.jpg")
    assert got == Annotated(
        (
            PixelBox(0.375, 0.25, 0.625, 0.75, 0, f"{txt}:1"),
            PixelBox(0, 0.5, 0.25, 1, 1, f"{txt}:3"),
        ),
        where=str(txt),
        normalized=True,
    )
    assert Annotated.from_json(got.to_json()) == got
    b = folder / "sub" / "b.txt"
    assert source.lookup("sub/b.png") == Annotated(where=str(b), normalized=True)
    # No txt: a negative image, without objects.
    assert source.lookup("c.jpg") == Annotated(normalized=True)


def test_class_names_from_classes_txt_or_a_mapping(tmp_path):
    labels = tmp_path / "labelimg"
    write(labels / "classes.txt", "cat\ndog\n\n")  # labelImg keeps it beside the labels
    write(labels / "a.txt", "1 0.5 0.5 0.5 0.5\n")
    source = yolo.read(labels)
    assert source.classes == {0: "cat", 1: "dog"}
    assert source.lookup("classes.jpg") == Annotated(normalized=True)  # not read as labels
    got = source.lookup("a.jpg")
    assert got is not None and [b.label for b in got.boxes] == [1]

    folder = ultralytics(
        tmp_path / "gaps",
        {"a.txt": "0 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.5 0.5\n"},
        data="names: {0: cat, 2: '7'}\n",
    )
    source = yolo.read(folder)
    assert source.classes == {0: "cat", 2: "7"}
    txt = folder / "a.txt"
    assert source.lookup("a.jpg") == Annotated(
        where=str(txt),
        problem=f"{txt}: line 2: class 1 has no name (the names give 0, 2)",
        normalized=True,
    )
    # names= points at a names file kept elsewhere.
    elsewhere = write(tmp_path / "meta" / "pets.yaml", "names: [a, b, c]\n")
    assert yolo.read(folder, names=elsewhere).classes == {0: "a", 1: "b", 2: "c"}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("0 0.5 0.5 0.2", "line 3 has 4 values, not 5 (class cx cy w h)"),
        (
            "0 0.1 0.1 0.2 0.1 0.2 0.2",
            "line 3 has 7 values, not 5 (class cx cy w h); segmentation polygons and pose"
            " keypoints are not packed yet, only boxes",
        ),
        ("0 0.5 abc 0.2 0.2", "line 3: 'abc' is not a number"),
        ("0 nan 0.5 0.2 0.2", "line 3: 'nan' is not a finite number"),
        ("0 0.5 0.5 inf 0.2", "line 3: 'inf' is not a finite number"),
        ("1.5 0.5 0.5 0.2 0.2", "line 3: class '1.5' is not a whole number"),
        ("2 0.5 0.5 0.2 0.2", "line 3: class 2 has no name (the names give 0 to 1)"),
        ("-1 0.5 0.5 0.2 0.2", "line 3: class -1 has no name (the names give 0 to 1)"),
        ("0 0.5 0.5 0 0.2", "line 3: the box is empty (w 0, h 0.2)"),
        ("0 0.5 0.5 0.2 -0.1", "line 3: the box is empty (w 0.2, h -0.1)"),
        (
            "0 1.2 0.5 0.1 0.1",
            "line 3: cx is 1.2, outside 0..1 (YOLO's values are fractions of the image's"
            " width and height)",
        ),
        (
            "0 0.9 0.5 0.4 0.2",
            "line 3: the box's right edge is at 1.1, outside the image (0 to 1: YOLO's values"
            " are fractions of the image's width and height)",
        ),
    ],
)
def test_a_line_that_is_not_a_box_inside_the_image_is_its_images_problem(tmp_path, line, problem):
    folder = ultralytics(tmp_path, {"a.txt": f"0 0.5 0.5 0.2 0.2\n\n{line}\n"})
    txt = folder / "a.txt"
    assert yolo.read(folder).lookup("a.jpg") == Annotated(
        where=str(txt), problem=f"{txt}: {problem}", normalized=True
    )


def test_an_edge_rounded_a_little_past_the_image_is_the_edge_and_other_writers(tmp_path):
    # Some tools write a BOM, or the class as a float.
    folder = ultralytics(tmp_path, {"a.txt": "\ufeff1 0.950003 0.5 0.100008 1.0\n1.0 .5 .5 .5 .5"})
    got = yolo.read(folder).lookup("a.jpg")
    assert got is not None and got.problem is None
    box, whole = got.boxes
    assert (whole.x0, whole.label) == (0.25, 1)
    assert (box.x1, box.y0, box.y1, box.label) == (1.0, 0.0, 1.0, 1)
    assert box.x0 == pytest.approx(0.899999)


def test_files_that_cannot_be_read_stop_the_run(tmp_path):
    folder = ultralytics(tmp_path / "d", {"a.txt": "0 0.5 0.5 0.2 0.2\n"})
    (folder / "a.txt").write_bytes(b"0 0.5 0.5 0.2 0.2 \xff\n")
    with pytest.raises(InputError) as e:
        yolo.read(folder).lookup("a.jpg")
    assert str(e.value) == (
        f"{folder / 'a.txt'}: not UTF-8 text (byte 18); the label file must be a text file"
    )

    bare = write(tmp_path / "bare" / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2\n").parent
    with pytest.raises(InputError) as e:
        yolo.read(bare)
    assert str(e.value) == (
        f"{bare}: no class names: add a classes.txt (one name a line, the first is class 0) or"
        " a data.yaml with names, here or in a folder above"
    )
    with pytest.raises(InputError, match="not a folder"):
        yolo.read(bare / "a.txt")
    write(tmp_path / "bare" / "images" / "classes.txt", "cat\n")
    with pytest.raises(InputError) as e:
        yolo.read(tmp_path / "bare" / "images")
    assert "no .txt label files here; give the labels folder that pairs with SRC" in str(e.value)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("data.yaml", "names: [cat, dog\nnc: 2\n", "not valid YAML at line 2; fix it"),
        ("data.yaml", "train: images/train\n", "has no 'names' (a list of class names,"),
        ("data.yaml", "names: [cat, no]\n", "names: class 1 is False, not a name (YAML reads"),
        ("data.yaml", "names: [cat, dog]\nnc: 3\n", "nc is 3, but names lists 2 classes"),
        ("data.yaml", "names: {cat: 0}\n", "names: 'cat' is not a class id (0, 1, ...)"),
        ("data.yaml", "names: [cat, cat]\n", "names: a name is given to two classes"),
        ("classes.txt", "cat\n\ndog\n", "line 2 is blank: a class's id is its line number"),
        ("classes.txt", "cat\ndog\ncat\n", "line 3 names 'cat' again (line 1); one name"),
        ("classes.txt", "\n", "names no classes"),
        ("classes.txt", "caf\xe9\n", "not UTF-8 text (byte 3); the class names file must be"),
    ],
)
def test_a_names_file_that_cannot_be_used_stops_the_run(tmp_path, name, text, message):
    names = tmp_path / "labels" / name
    names.parent.mkdir()
    names.write_bytes(text.encode("latin-1"))
    write(tmp_path / "labels" / "a.txt", "")
    with pytest.raises(InputError) as e:
        yolo.read(tmp_path / "labels")
    assert str(e.value).startswith(f"{names}: {message}")
