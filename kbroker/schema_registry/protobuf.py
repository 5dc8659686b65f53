"""Protobuf schemas: ``.proto`` text compiled by protoc (the ``grpcio-tools`` package runs it in-process)
into descriptors, or a base64 ``FileDescriptorProto`` as confluent-kafka's ProtobufSerializer registers
them; compared on the descriptors with Confluent's Protobuf compatibility rules.

Confluent diffs the old schema ("original") with the new one ("update"); a change is compatible when
every difference is in its ``SchemaDiff.COMPATIBLE_CHANGES`` (``COMPATIBLE`` below). Implemented: package
changes; messages added, removed and moved (nested ones by their dotted local name; map entries are not
messages); fields by number: added, removed, renamed, kind (scalar or enum / message / map), scalar kind
by wire-compatible group (int32, int64, uint32, uint64, bool, enums; sint32, sint64; fixed32, sfixed32;
fixed64, sfixed64; string, bytes; float; double), message type by local name, label changes (only
string/bytes may switch between singular and repeated), proto2 ``required`` added or removed, and oneofs
(a field removed from or moved into an existing oneof, several fields moved into a new one). Enum changes
are all compatible, as in Confluent.

References: imports are other registered schemas (their reference name is the import path);
``google/protobuf/*.proto`` resolve without a reference, as in Confluent.
"""

from __future__ import annotations

import ast
import base64
import binascii
import os
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

COMPATIBLE = frozenset({
    "MESSAGE_ADDED", "MESSAGE_MOVED", "ENUM_ADDED", "ENUM_REMOVED", "ENUM_CONST_ADDED", "ENUM_CONST_CHANGED",
    "ENUM_CONST_REMOVED", "FIELD_ADDED", "FIELD_REMOVED", "FIELD_NAME_CHANGED", "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
    "ONEOF_ADDED", "ONEOF_REMOVED", "ONEOF_FIELD_ADDED",
})

F = descriptor_pb2.FieldDescriptorProto
_SCALAR_KIND = {
    F.TYPE_INT32: "GENERAL_NUMBER", F.TYPE_INT64: "GENERAL_NUMBER", F.TYPE_UINT32: "GENERAL_NUMBER",
    F.TYPE_UINT64: "GENERAL_NUMBER", F.TYPE_BOOL: "GENERAL_NUMBER", F.TYPE_ENUM: "GENERAL_NUMBER",
    F.TYPE_SINT32: "SIGNED_NUMBER", F.TYPE_SINT64: "SIGNED_NUMBER",
    F.TYPE_STRING: "STRING_OR_BYTES", F.TYPE_BYTES: "STRING_OR_BYTES",
    F.TYPE_FIXED32: "FIXED32", F.TYPE_SFIXED32: "FIXED32", F.TYPE_FIXED64: "FIXED64", F.TYPE_SFIXED64: "FIXED64",
    F.TYPE_FLOAT: "FLOAT", F.TYPE_DOUBLE: "DOUBLE",
}


class ProtobufSchema:
    schema_type = "PROTOBUF"

    def __init__(self, schema_str: str, files: list):
        self.schema_str = schema_str
        self.files = files  # FileDescriptorProto, every dependency before what imports it; the schema last
        self.file = files[-1]
        ident = descriptor_pb2.FileDescriptorProto()
        ident.CopyFrom(self.file)
        ident.name = ""
        self.canonical = base64.b64encode(ident.SerializeToString(deterministic=True)).decode()
        self._pool = None

    def normalized(self) -> str:
        return self.schema_str

    def serialized(self) -> str:
        """``format=serialized``: the base64 FileDescriptorProto, as confluent-kafka's deserializer asks."""
        return base64.b64encode(self.file.SerializeToString()).decode()

    def message_descriptor(self, indexes: list[int]):
        if self._pool is None:
            pool = descriptor_pool.DescriptorPool()
            for f in self.files:
                try:
                    pool.FindFileByName(f.name)
                except KeyError:
                    pool.Add(f)
            self._pool = pool
        fd = self._pool.FindFileByName(self.file.name)
        desc = list(fd.message_types_by_name.values())[indexes[0]]
        for i in indexes[1:]:
            desc = desc.nested_types[i]
        return desc

    def decode(self, payload: bytes):
        try:
            indexes, pos = _message_indexes(payload)
            return self._decode(indexes, payload[pos:])
        except Exception:
            # @kafkajs/confluent-schema-registry writes no message indexes (its issue #248): the first
            # message, from the first byte (as Confluent's JavaScript deserializer also accepts).
            return self._decode([0], payload)

    def _decode(self, indexes: list[int], data: bytes):
        cls = message_factory.GetMessageClass(self.message_descriptor(indexes))
        msg = cls()
        msg.ParseFromString(bytes(data))
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _varint(buf, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _zigzag(buf, pos: int) -> tuple[int, int]:
    v, pos = _varint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def _message_indexes(buf) -> tuple[list[int], int]:
    """Confluent's message indexes: a zigzag varint count, then that many indexes; a lone 0 is [0]."""
    count, pos = _zigzag(buf, 0)
    if count == 0:
        return [0], pos
    out = []
    for _ in range(count):
        i, pos = _zigzag(buf, pos)
        out.append(i)
    return out, pos


def _as_descriptor(schema_str: str):
    """A base64 FileDescriptorProto, or None when the text is not one."""
    s = schema_str.strip()
    if not s or any(c.isspace() for c in s):
        return None
    try:
        raw = base64.b64decode(s, validate=True)
        fdp = descriptor_pb2.FileDescriptorProto()
        fdp.ParseFromString(raw)
    except (binascii.Error, ValueError, Exception):  # protobuf's DecodeError is an Exception
        return None
    return fdp if fdp.name or fdp.message_type else None


_WELL_KNOWN = None


def _well_known(name: str):
    global _WELL_KNOWN
    if _WELL_KNOWN is None:
        import importlib

        for module in ("any", "api", "duration", "empty", "field_mask", "source_context", "struct", "timestamp",
                       "type", "wrappers"):  # importing them adds them to the default pool
            importlib.import_module(f"google.protobuf.{module}_pb2")
        _WELL_KNOWN = descriptor_pool.Default()
    try:
        fd = _WELL_KNOWN.FindFileByName(name)
    except KeyError:
        return None
    out = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(out)
    return out


def _compile(schema_str: str, deps: list[tuple[str, str]]) -> list:
    """protoc on the text and its imports, in a scratch directory; returns FileDescriptorProtos."""
    import grpc_tools
    from grpc_tools import _protoc_compiler

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    names = {n for n, _ in deps}
    main = next(n for n in ("schema.proto", "kbroker_schema.proto", "kbroker_schema_0.proto") if n not in names)
    with tempfile.TemporaryDirectory(prefix="kbroker-proto-") as tmp:
        descriptors = descriptor_pb2.FileDescriptorSet()
        for name, text in deps + [(main, schema_str)]:
            fdp = _as_descriptor(text) if name != main else None
            if fdp is not None:  # a reference registered as a serialized descriptor (confluent-kafka's way)
                fdp.name = name
                descriptors.file.append(fdp)
                continue
            path = os.path.join(tmp, name)
            if not os.path.realpath(path).startswith(os.path.realpath(tmp) + os.sep):
                raise ValueError(f"reference name {name!r} leaves the import root")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        if descriptors.file:
            return _compile_with_descriptors(tmp, include, main, descriptors)
        try:
            modules = _protoc_compiler.get_protos(main.encode(), [tmp.encode(), include.encode()])
        except _protoc_compiler.ProtocErrors as e:
            raise ValueError("; ".join(f"{x.filename.decode()}:{x.line}: {x.message.decode()}"
                                       for x in e.errors())) from None
    files = []
    for _module, code in modules:
        files.append(_serialized_file(code.decode("utf-8")))
    return files


def _compile_with_descriptors(tmp: str, include: str, main: str, descriptors) -> list:
    """protoc with the references that are descriptors given as a descriptor set (``--descriptor_set_in``).
    protoc's messages go to its standard error here, so the answer only says that it failed."""
    from grpc_tools import _protoc_compiler

    deps_path, out_path = os.path.join(tmp, ".deps.pb"), os.path.join(tmp, ".out.pb")
    with open(deps_path, "wb") as fh:
        fh.write(descriptors.SerializeToString())
    rc = _protoc_compiler.run_main([b"protoc", f"-I{tmp}".encode(), f"-I{include}".encode(),
                                    f"--descriptor_set_in={deps_path}".encode(),
                                    f"--descriptor_set_out={out_path}".encode(), b"--include_imports",
                                    main.encode()])
    if rc != 0:
        raise ValueError("protoc could not compile the schema with its references")
    out = descriptor_pb2.FileDescriptorSet()
    with open(out_path, "rb") as fh:
        out.ParseFromString(fh.read())
    for f in out.file:  # as the other path gives them: without the json_name protoc fills in here
        for m in f.message_type:
            _strip_json_names(m)
    return list(out.file)


def _strip_json_names(m) -> None:
    for field in m.field:
        field.ClearField("json_name")
    for nested in m.nested_type:
        _strip_json_names(nested)


def _serialized_file(code: str):
    """The FileDescriptorProto that protoc's generated Python module hands to ``AddSerializedFile``
    (read from the module's syntax tree, never executed)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "AddSerializedFile":
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(ast.literal_eval(node.args[0]))
            return fdp
    raise ValueError("protoc produced no descriptor")


def parse(schema_str: str, deps: list[tuple[str, str]]) -> ProtobufSchema:
    try:
        main = _as_descriptor(schema_str)
        if main is None:
            files = _compile(schema_str, deps)
        else:
            by_name = {}
            for name, text in deps:
                fdp = _as_descriptor(text)
                if fdp is None:
                    fdp = _compile(text, [d for d in deps if d[0] != name])[-1]
                fdp.name = name
                by_name[name] = fdp
            files = []
            for name in main.dependency:
                fdp = by_name.get(name) or _well_known(name)
                if fdp is None:
                    raise ValueError(f"{name} is imported but is not a reference")
                files.append(fdp)
            for name, fdp in by_name.items():
                if fdp not in files:
                    files.insert(0, fdp)
            files.append(main)
            pool = descriptor_pool.DescriptorPool()  # proves the descriptors consistent
            for f in files:
                for dep in f.dependency:
                    if dep not in {x.name for x in files} and _well_known(dep) is not None:
                        files.insert(0, _well_known(dep))
            for f in files:
                try:
                    pool.FindFileByName(f.name)
                except KeyError:
                    pool.Add(f)
            pool.FindFileByName(main.name)
    except ValueError as e:
        raise ValueError(f"Invalid schema: {e}") from None
    except (TypeError, KeyError) as e:
        raise ValueError(f"Invalid schema: {e}") from None
    return ProtobufSchema(schema_str, files)


# -- compatibility -----------------------------------------------------------------------------


class _Types:
    """Every message and enum of a schema (with its references), by full name."""

    def __init__(self, schema: ProtobufSchema):
        self.package = schema.file.package
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: set[str] = set()
        for f in schema.files:
            prefix = f".{f.package}" if f.package else ""
            for m in f.message_type:
                self._add(prefix, m)
            for e in f.enum_type:
                self.enums.add(f"{prefix}.{e.name}")
        self.local: dict[str, descriptor_pb2.DescriptorProto] = {}  # this file's messages by dotted local name
        self.top_index: dict[str, int] = {}
        for i, m in enumerate(schema.file.message_type):
            self.top_index[m.name] = i
            self._add_local("", m)

    def _add(self, prefix: str, m) -> None:
        full = f"{prefix}.{m.name}"
        self.messages[full] = m
        for n in m.nested_type:
            self._add(full, n)
        for e in m.enum_type:
            self.enums.add(f"{full}.{e.name}")

    def _add_local(self, prefix: str, m) -> None:
        name = f"{prefix}{m.name}"
        if not m.options.map_entry:
            self.local[name] = m
        for n in m.nested_type:
            self._add_local(f"{name}.", n)

    def local_name(self, full: str) -> str:
        p = f".{self.package}." if self.package else "."
        return full[len(p):] if full.startswith(p) else full.lstrip(".")

    def kind(self, f) -> str:
        if f.type == F.TYPE_MESSAGE:
            m = self.messages.get(f.type_name)
            return "MAP" if m is not None and m.options.map_entry else "MESSAGE"
        return "SCALAR"


class _Diff:
    def __init__(self, original: ProtobufSchema, update: ProtobufSchema):
        self.o, self.u = _Types(original), _Types(update)
        self.out: list[tuple[str, str]] = []
        self.seen: set = set()
        if original.file.package != update.file.package:
            self.out.append(("#/", "PACKAGE_CHANGED"))
        for name in sorted(set(self.o.local) | set(self.u.local)):
            om, um = self.o.local.get(name), self.u.local.get(name)
            if um is None:
                self.out.append((f"#/{name}", "MESSAGE_REMOVED"))
            elif om is None:
                self.out.append((f"#/{name}", "MESSAGE_ADDED"))
            else:
                self.message(name, om, um)

    def message(self, path: str, om, um) -> None:
        if (id(om), id(um)) in self.seen:
            return
        self.seen.add((id(om), id(um)))
        ofields = {f.number: f for f in om.field}
        ufields = {f.number: f for f in um.field}
        oneof_o = {f.number: om.oneof_decl[f.oneof_index].name for f in om.field
                   if f.HasField("oneof_index") and not f.proto3_optional}
        oneof_u = {f.number: um.oneof_decl[f.oneof_index].name for f in um.field
                   if f.HasField("oneof_index") and not f.proto3_optional}
        moved_to_new: dict[str, int] = {}
        for number in sorted(set(ofields) | set(ufields)):
            fpath = f"#/{path}/{number}"
            of, uf = ofields.get(number), ufields.get(number)
            if uf is None:
                self.out.append((fpath, "ONEOF_FIELD_REMOVED" if number in oneof_o else "FIELD_REMOVED"))
                if of.label == F.LABEL_REQUIRED:
                    self.out.append((fpath, "REQUIRED_FIELD_REMOVED"))
                continue
            if of is None:
                existing = number in oneof_u and oneof_u[number] in set(oneof_o.values())
                self.out.append((fpath, "ONEOF_FIELD_ADDED" if existing else "FIELD_ADDED"))
                if uf.label == F.LABEL_REQUIRED:
                    self.out.append((fpath, "REQUIRED_FIELD_ADDED"))
                continue
            if number not in oneof_o and number in oneof_u:
                if oneof_u[number] in set(oneof_o.values()):
                    self.out.append((fpath, "FIELD_MOVED_TO_EXISTING_ONEOF"))
                else:
                    moved_to_new[oneof_u[number]] = moved_to_new.get(oneof_u[number], 0) + 1
            if of.name != uf.name:
                self.out.append((fpath, "FIELD_NAME_CHANGED"))
            if (of.label == F.LABEL_REQUIRED) != (uf.label == F.LABEL_REQUIRED):
                self.out.append((fpath, "REQUIRED_FIELD_ADDED" if uf.label == F.LABEL_REQUIRED
                                 else "REQUIRED_FIELD_REMOVED"))
            self.field(fpath, of, uf)
        for name, count in moved_to_new.items():
            self.out.append((f"#/{path}", "MULTIPLE_FIELDS_MOVED_TO_ONEOF" if count > 1 else "ONEOF_ADDED"))

    def field(self, fpath: str, of, uf) -> None:
        ok, uk = self.o.kind(of), self.u.kind(uf)
        if ok != uk:
            self.out.append((fpath, "FIELD_KIND_CHANGED"))
            return
        orep, urep = of.label == F.LABEL_REPEATED, uf.label == F.LABEL_REPEATED
        if ok == "SCALAR":
            if _SCALAR_KIND[of.type] != _SCALAR_KIND[uf.type]:
                self.out.append((fpath, "FIELD_SCALAR_KIND_CHANGED"))
            elif orep != urep:
                self.out.append((fpath, "FIELD_STRING_OR_BYTES_LABEL_CHANGED"
                                 if _SCALAR_KIND[of.type] == "STRING_OR_BYTES" else "FIELD_NUMERIC_LABEL_CHANGED"))
        elif ok == "MAP":
            om, um = self.o.messages[of.type_name], self.u.messages[uf.type_name]
            for a, b in zip(sorted(om.field, key=lambda f: f.number), sorted(um.field, key=lambda f: f.number)):
                self.field(fpath, a, b)
        else:
            if orep != urep:
                self.out.append((fpath, "FIELD_MESSAGE_LABEL_CHANGED"))
            oname, uname = self.o.local_name(of.type_name), self.u.local_name(uf.type_name)
            if oname != uname:
                self.out.append((fpath, "FIELD_NAMED_TYPE_CHANGED"))
                return
            om, um = self.o.messages.get(of.type_name), self.u.messages.get(uf.type_name)
            if om is not None and um is not None:
                before = len(self.out)
                self.message(oname, om, um)
                if any(k not in COMPATIBLE for _, k in self.out[before:]):
                    self.out.append((fpath, "FIELD_NAMED_TYPE_CHANGED"))


def incompatibilities(original: ProtobufSchema, update: ProtobufSchema) -> list[str]:
    d = _Diff(original, update)
    return [f"{{errorType:'{kind}', description:'Found incompatible change: Difference{{fullPath='{p}', "
            f"type={kind}}}'}}" for p, kind in d.out if kind not in COMPATIBLE]
