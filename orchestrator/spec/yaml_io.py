"""Reading YAML from users, safely and boundedly: specs, `key=value` overrides, stored `spec.yaml`.

- Only plain data (a `yaml.SafeLoader`, no explicit `!!tags`); a key repeated in one mapping is an error.
- Merge keys, as YAML 1.1 and most tools read them: `<<: *defaults` (or a list of aliases) adds the keys
  of those mappings that the mapping does not give itself (`resources: {finetune: {<<: *pretrain, gpus: 1}}`).
- YAML 1.2 core scalars: `true`/`false` are booleans (not `yes`/`on`), `1:30` is a string, `1e3`
  is a number. An integer with a leading zero (`010`) is refused: YAML 1.1 reads it as octal 8,
  YAML 1.2 as 10, so the reader of the file cannot tell which was meant. Integers have at most
  `MAX_INT_DIGITS` digits.
- Bounded: at most `MAX_BYTES` of text, `MAX_DEPTH` levels of nesting, `MAX_ALIASES` alias uses and
  `MAX_NODES` nodes once aliases are expanded (a 500-byte "billion laughs" is refused, not expanded).
- Text must be UTF-8; errors name the file, line and column.
"""
from __future__ import annotations

import os
import re
import select
import stat
import time
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import MmcError
from orchestrator.uris import remember_secrets

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_INT_DIGITS = 40          # far beyond int64; Python refuses 4300+ digits with a ValueError


class YamlError(MmcError, ValueError):
    """Text that is not acceptable YAML for mmc-sweep; the message says where and why."""


MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE = re.compile(r"^<<$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, unique keys and limits on depth and aliases."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlError(f"line {mark.line + 1}: more than {MAX_ALIASES} aliases (*name); "
                                "write the values out instead")
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and not isinstance(event, yaml.AliasEvent):
            raise YamlError(f"line {event.start_mark.line + 1}, column {event.start_mark.column + 1}: the tag "
                            f"{_short(tag.replace('tag:yaml.org,2002:', '!!'))} is not allowed; write plain values "
                            "(quote a value to make it a string)")
        if tag == "!" and isinstance(event, yaml.ScalarEvent):
            event.implicit = (False, False)   # YAML 1.2 (6.9.1): `!` makes a scalar text (PyYAML resolves it)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


for _tag, _pattern, _first in (
        ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
        ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
        ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
        (MERGE_TAG, _MERGE, "<")):
    _Loader.add_implicit_resolver(_tag, _pattern, list(_first))


def _construct_int(loader: _Loader, node: ScalarNode) -> int:
    text = loader.construct_scalar(node)
    where = f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
    digits = text.lstrip("+-")
    if len(digits) > MAX_INT_DIGITS:
        raise YamlError(f"{where}: an integer of {len(digits)} digits; at most {MAX_INT_DIGITS}")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        raise YamlError(f"{where}: {text} has a leading zero, which YAML readers disagree on (YAML 1.1: "
                        f"octal or a string, YAML 1.2: {int(text)}); write {int(text)}, 0o... for octal, or "
                        "quote it for a string")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: _Loader, node: ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_MERGE_KEY = ("<<", MERGE_TAG)   # a merge key, apart from a quoted '<<' (a plain string key)


def _construct_mapping(loader: _Loader, node: MappingNode) -> dict:
    """The mapping, its merge keys expanded (SafeLoader's `flatten_mapping`: its own keys win); a key the
    mapping itself gives twice is an error (merged keys that it overrides are not)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        merge = key_node.tag == MERGE_TAG
        key = _MERGE_KEY if merge else loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise YamlError(f"line {key_node.start_mark.line + 1}: key {_short('<<' if merge else key)} appears "
                                f"twice (first on line {seen[key] + 1})"
                                + ("; merge several mappings with one `<<: [*a, *b]`" if merge else ""))
            seen[key] = key_node.start_mark.line
        except TypeError:   # an unhashable key (a list or mapping): refused by the constructor below
            pass
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _count_nodes(node: Node, limit: int) -> int:
    """Nodes of the document with aliases expanded, counting stops just past `limit`."""
    count, stack = 0, [node]
    while stack and count <= limit:
        current = stack.pop()
        count += 1
        if isinstance(current, SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
    return count


def _remember_secrets(data: Any) -> None:
    """Every string of the document is a value known whole: the userinfo of a URI in one is hidden from every
    message (`uris.remember_secrets`), whatever quote or blank its password holds."""
    if isinstance(data, dict):
        for key, value in data.items():
            _remember_secrets(key)
            _remember_secrets(value)
    elif isinstance(data, list):
        for value in data:
            _remember_secrets(value)
    else:
        remember_secrets(data)


def parse_yaml(text: str) -> Any:
    """Plain data from YAML `text` (see the module docstring); YamlError on anything else."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"{len(text)} characters is more than the {MAX_BYTES} a spec may have")
    try:
        loader = _Loader(text)          # reads the whole text: a control character is refused here
    except yaml.reader.ReaderError as e:
        raise YamlError(_unprintable(text, e)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _count_nodes(node, MAX_NODES) > MAX_NODES:
            raise YamlError(f"more than {MAX_NODES} values once aliases are expanded; write the spec out "
                            "without nested aliases")
        data = loader.construct_document(node)
        _remember_secrets(data)
        return data
    except YamlError:
        raise
    except yaml.YAMLError as e:
        raise YamlError(_describe(e)) from None
    except (RecursionError, MemoryError):
        raise YamlError(f"the document is nested too deeply or too large (limits: {MAX_DEPTH} levels, "
                        f"{MAX_NODES} values)") from None
    finally:
        loader.dispose()


class _Dumper(yaml.SafeDumper):
    """SafeDumper whose text `parse_yaml` reads back as the same data: PyYAML writes YAML 1.1, so a string
    that 1.1 reads as text but 1.2 as a number (`1e3`, `0o17`) would come back a number, and one with a
    character YAML takes for a line break (U+0085) would come back folded."""


_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: _Dumper, value: str) -> Node:
    if any(c in value for c in _LINE_BREAKS):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')   # escaped there
    if _Loader.resolve(_Loader, ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")   # a number to 1.2: quoted
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any, **options: Any) -> str:
    """`data` (plain data) as YAML text that `parse_yaml` reads back as `data` (`yaml.dump` options apply)."""
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, **options)


STREAM_TIMEOUT_S = 10.0   # a pipe or device (`<(cat spec.yaml)`, /dev/stdin) must deliver its text within this


def read_text(path: str | Path, what: str = "file") -> str:
    """UTF-8 text of a local file, with errors that name the file; YamlError for anything unreadable.
    A pipe, FIFO or device is read without blocking: a FIFO nobody writes to reads as empty, one that
    stalls (or a terminal) fails after STREAM_TIMEOUT_S, an endless one (/dev/zero) after MAX_BYTES."""
    from orchestrator.messages import as_typed

    path, shown = Path(path), as_typed(str(path))
    try:
        if path.is_dir():
            raise YamlError(f"{shown} is a directory, not a {what}")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # opening a FIFO without a writer would block
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                with os.fdopen(os.dup(fd), "rb") as f:
                    data = f.read(MAX_BYTES + 1)
            else:
                data = _read_stream(fd, shown, what)
        finally:
            os.close(fd)
    except OSError as e:
        raise YamlError(f"cannot read the {what} {shown}: {e.strerror or e}") from None
    return decode(data, shown, what)


def _read_stream(fd: int, path: str, what: str) -> bytes:
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    chunks, size = [], 0
    while size <= MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise YamlError(f"the {what} {path} delivered no (more) text within {STREAM_TIMEOUT_S:g} s; give a "
                            "regular file")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def decode(data: bytes, source: str, what: str = "file") -> str:
    if len(data) > MAX_BYTES:
        raise YamlError(f"the {what} {source} is larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(f"the {what} {source} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                        "save it as UTF-8") from None


def _unprintable(text: str, e: yaml.reader.ReaderError) -> str:
    line = text.count("\n", 0, e.position) + 1
    column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
    return (f"invalid YAML at line {line}, column {column}: the character U+{e.character:04X} is not allowed "
            "(a control character: YAML takes tab and newline only); remove it")


def _describe(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and start:
        problem += f" ({context} started on line {start.line + 1})"
    return f"invalid YAML at {where}{problem}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
