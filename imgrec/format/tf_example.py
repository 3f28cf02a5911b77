"""``tf.train.Example`` without TensorFlow: message classes from a descriptor equivalent to
TensorFlow's ``example.proto`` and ``feature.proto`` (same field numbers and types), built
in a private pool. ``schema`` builds and parses records with them."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def _build_example_class() -> Any:
    """Message classes for tensorflow/core/example/{example,feature}.proto, in a private pool."""
    f = descriptor_pb2.FileDescriptorProto(
        name="imgrec/tf_example.proto", package="imgrec_tf", syntax="proto3"
    )
    fd = descriptor_pb2.FieldDescriptorProto
    rep, opt = fd.LABEL_REPEATED, fd.LABEL_OPTIONAL

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
        return m

    message("BytesList", ("value", 1, fd.TYPE_BYTES, rep, ""))
    message("FloatList", ("value", 1, fd.TYPE_FLOAT, rep, ""))
    message("Int64List", ("value", 1, fd.TYPE_INT64, rep, ""))
    feature = message(
        "Feature",
        ("bytes_list", 1, fd.TYPE_MESSAGE, opt, ".imgrec_tf.BytesList"),
        ("float_list", 2, fd.TYPE_MESSAGE, opt, ".imgrec_tf.FloatList"),
        ("int64_list", 3, fd.TYPE_MESSAGE, opt, ".imgrec_tf.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message(
        "Features", ("feature", 1, fd.TYPE_MESSAGE, rep, ".imgrec_tf.Features.FeatureEntry")
    )
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=fd.TYPE_STRING, label=opt)
    entry.field.add(
        name="value", number=2, type=fd.TYPE_MESSAGE, label=opt, type_name=".imgrec_tf.Feature"
    )
    message("Example", ("features", 1, fd.TYPE_MESSAGE, opt, ".imgrec_tf.Features"))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("imgrec_tf.Example"))


Example = _build_example_class()
