"""Reading YAML from users (`orchestrator.spec.yaml_io`): YAML 1.2 core scalars, integers without a
leading zero and of at most MAX_INT_DIGITS digits, every limit (bytes, depth, aliases, expanded nodes)
allowing exactly its value and refusing one more, streams read to their end and no further, and
errors that say where. The bad-spec corpus (tests/orchestrator/bad_specs/) holds the refusals as a user
meets them; these tests hold the boundaries."""
from __future__ import annotations

import math
import os

import pytest

from orchestrator.spec import yaml_io
from orchestrator.spec.yaml_io import YamlError, parse_yaml, read_text


# ----- YAML 1.2 core scalars -----

@pytest.mark.parametrize("text, value", [
    ("true", True), ("False", False), ("yes", "yes"), ("on", "on"), ("No", "No"),   # YAML 1.1 words are text
    ("True", True), ("TRUE", True), ("false", False), ("FALSE", False), ("tRUE", "tRUE"),   # three spellings each
    ("", None), ("~", None), ("null", None), ("NULL", None), ("Null", None), ("nULL", "nULL"),
    ("0o17", 15), ("0x1F", 31), ("0x10", 16), ("0o10", 8),                           # 1.2 octal and hex
    ("0X1F", "0X1F"), ("0O17", "0O17"),                                              # only a lower-case 0x / 0o
    ("0", 0), ("-0", 0), ("+12", 12), ("-12", -12),
    ("1e3", 1000.0), ("1E-2", 0.01), ("0.5", 0.5), ("-.5", -0.5),
    ("1.", 1.0), ("-2.e1", -20.0),                                                   # digits, a point, no fraction
    ("! abc", "abc"), ("! 12", "12"), ("! true", "true"), ("! null", "null"),       # the non-specific tag `!`
    ("1:30", "1:30"),                                                                # not sexagesimal 90
    (".inf", math.inf), (".Inf", math.inf), ("+.inf", math.inf), ("-.inf", -math.inf), ("-.INF", -math.inf),
])
def test_plain_scalars_read_as_the_yaml_1_2_core_schema_says(text, value):
    """YAML 1.2 core schema (yaml.org/spec/1.2.2, 10.3.2): `0o17` is octal 15, `0x1F` hex 31 (the prefix is
    lower case: `0X1F` is text), `.Inf` any-case infinity with its sign; booleans and null in exactly their
    three spellings (`true|True|TRUE`, `null|Null|NULL`, `~`); a float may end in its point (`1.`);
    `yes`/`on` and `1:30` are text (they were YAML 1.1 bools and base 60). The non-specific tag `!` is no
    `!!tag`: it is allowed, and makes a scalar text (`! 12` is the text 12; PyYAML would read 12)."""
    read = parse_yaml(f"k: {text}\n")["k"]
    assert read == value and type(read) is type(value), (text, read)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan_reads_in_every_spelling_yaml_1_2_allows(text):
    value = parse_yaml(f"k: {text}\n")["k"]
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize("text", ["07", "00", "-07", "+007", "-00"])
def test_an_integer_with_a_leading_zero_is_refused_whatever_its_sign(text):
    """YAML 1.1 reads 07 as octal, 1.2 as 7: the reader cannot tell which was meant; a sign in front
    changes nothing about that."""
    with pytest.raises(YamlError, match="has a leading zero"):
        parse_yaml(f"k: {text}\n")


def test_an_integer_may_have_max_int_digits_and_no_more_and_its_sign_is_no_digit():
    n = yaml_io.MAX_INT_DIGITS
    assert parse_yaml("9" * n) == int("9" * n)
    assert parse_yaml("-" + "9" * n) == -int("9" * n)
    with pytest.raises(YamlError, match=f"an integer of {n + 1} digits; at most {n}"):
        parse_yaml("9" * (n + 1))


# ----- limits: the largest allowed is allowed, one more is not -----

def test_a_document_may_use_max_aliases_aliases_and_no_more():
    n = yaml_io.MAX_ALIASES
    text = "a: &x 1\nb: [{}]\n"
    assert parse_yaml(text.format(", ".join(["*x"] * n)))["b"] == [1] * n
    with pytest.raises(YamlError, match=f"more than {n} aliases"):
        parse_yaml(text.format(", ".join(["*x"] * (n + 1))))


def test_a_document_may_nest_max_depth_levels_and_no_more():
    """`[[...]]` with n brackets is n levels deep (the outer list is level 1)."""
    n = yaml_io.MAX_DEPTH
    assert parse_yaml("[" * n + "]" * n) is not None
    with pytest.raises(YamlError, match=f"nested more than {n} levels deep"):
        parse_yaml("[" * (n + 1) + "]" * (n + 1))


@pytest.mark.parametrize("text, nodes", [
    ("[a, b, c]", 4),                               # the list and its three items
    ("{a: 1, b: 2}", 5),                            # the mapping, two keys, two values
    ("x: &a [1, 2]\ny: *a\n", 9),                   # mapping, 2 keys, the list (3 nodes) twice: aliases expanded
    ("x: &a {k: [1, 2]}\ny: [*a, *a]\n", 1 + 2 + 5 + 1 + 5 + 5),
])
def test_a_document_may_hold_max_nodes_values_once_aliases_are_expanded_and_no_more(text, nodes, monkeypatch):
    """Every node counts: a mapping's keys as well as its values, an alias as the whole node it names."""
    monkeypatch.setattr(yaml_io, "MAX_NODES", nodes)
    assert parse_yaml(text) is not None
    monkeypatch.setattr(yaml_io, "MAX_NODES", nodes - 1)
    with pytest.raises(YamlError, match=f"more than {nodes - 1} values once aliases are expanded"):
        parse_yaml(text)


def test_text_may_have_max_bytes_characters_and_no_more(monkeypatch):
    monkeypatch.setattr(yaml_io, "MAX_BYTES", 10)
    assert parse_yaml("k: 1234567") == {"k": 1234567}             # 10 characters
    with pytest.raises(YamlError, match="11 characters is more than the 10"):
        parse_yaml("k: 12345678")


def test_a_file_may_have_max_bytes_bytes_and_a_larger_one_is_refused_not_cut(tmp_path, monkeypatch):
    """A file one byte too large must be refused: reading only its first MAX_BYTES bytes would run a
    spec the user did not write (its tail cut off)."""
    monkeypatch.setattr(yaml_io, "MAX_BYTES", 10)
    path = tmp_path / "s.yaml"
    path.write_bytes(b"k: 1234567")
    assert read_text(path) == "k: 1234567"
    path.write_bytes(b"k: 12345678")
    with pytest.raises(YamlError, match="larger than 10 bytes"):
        read_text(path)


# ----- streams (a pipe, /dev/stdin, a device) -----

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")


@pytest.fixture
def pipe():
    """`pipe(data, close_writer=True)`: the /proc path of a pipe holding `data` (its writer still open
    with `close_writer=False`); every end is closed after the test."""
    fds: list[int] = []

    def make(data: bytes, close_writer: bool = True) -> str:
        r, w = os.pipe()
        os.write(w, data)
        fds.append(r)
        if close_writer:
            os.close(w)
        else:
            fds.append(w)
        return f"/proc/self/fd/{r}"

    yield make
    for fd in fds:
        os.close(fd)


@needs_proc
def test_a_pipe_whose_writer_is_done_reads_to_its_end(monkeypatch, pipe):
    """The end of a pipe's text ends the read at once (not the stream timeout)."""
    monkeypatch.setattr(yaml_io, "STREAM_TIMEOUT_S", 2.0)
    assert read_text(pipe(b"name: x\nseeds: [1]\n"), "spec file") == "name: x\nseeds: [1]\n"


@needs_proc
def test_a_pipe_that_stalls_fails_after_the_stream_timeout(monkeypatch, pipe):
    """Its writer still open and nothing more coming: what came so far is not the whole file."""
    monkeypatch.setattr(yaml_io, "STREAM_TIMEOUT_S", 0.2)
    monkeypatch.setattr(yaml_io, "MAX_BYTES", 8)
    path = pipe(b"name: xy", close_writer=False)        # exactly MAX_BYTES so far
    with pytest.raises(YamlError, match="delivered no \\(more\\) text within 0.2 s"):
        read_text(path, "spec file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_stream_is_refused_after_max_bytes_not_cut_to_them(monkeypatch):
    """/dev/zero never ends: it must be refused as too large, not read as MAX_BYTES NUL characters."""
    monkeypatch.setattr(yaml_io, "MAX_BYTES", 65536)
    with pytest.raises(YamlError, match="/dev/zero is larger than 65536 bytes"):
        read_text("/dev/zero", "spec file")


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(YamlError, match="is a directory, not a spec file"):
        read_text(tmp_path, "spec file")


# ----- merge keys -----

@pytest.mark.parametrize("text, value", [
    ("d: &d {a: 1, b: 2}\nx: {<<: *d, b: 3}\n", {"a": 1, "b": 3}),           # its own keys win, before or after
    ("d: &d {a: 1, b: 2}\nx: {b: 3, <<: *d}\n", {"a": 1, "b": 3}),
    ("d: &d {a: 1}\ne: &e {a: 2, c: 4}\nx: {<<: [*d, *e]}\n", {"a": 1, "c": 4}),   # the first mapping listed wins
    ("x: {'<<': 1}\n", {"<<": 1}),                                                 # quoted: a plain key
])
def test_merge_keys_add_the_keys_a_mapping_does_not_give_itself(text, value):
    assert parse_yaml(text)["x"] == value


@pytest.mark.parametrize("text, message", [
    ("d: &d {a: 1}\nx:\n  <<: *d\n  <<: *d\n",
     r"^line 4: key '<<' appears twice \(first on line 3\); merge several mappings with one `<<: \[\*a, \*b\]`$"),
    ("d: &d {a: 1}\nx: {<<: *d, a: 2, a: 3}\n", r"^line 2: key 'a' appears twice"),
    ("x: {<<: 3}\n", r"^invalid YAML at line 1, column 9: expected a mapping or list of mappings for merging"),
    ("d: &d [1]\nx: {<<: *d}\n", r"^invalid YAML at line 1, column 8: expected a mapping for merging, but found scalar"),
])
def test_a_merge_key_given_twice_or_naming_no_mapping_is_refused_saying_where(text, message):
    with pytest.raises(YamlError, match=message):
        parse_yaml(text)


# ----- errors say where -----

def test_a_repeated_key_names_both_lines():
    with pytest.raises(YamlError, match=r"^line 4: key 'a' appears twice \(first on line 2\)$"):
        parse_yaml("name: x\na: 1\nb: 2\na: 3\n")


def test_a_syntax_error_names_its_line_and_column_and_where_the_unclosed_bracket_opened():
    """Lines and columns count from 1, as editors show them: the `[` opens on line 2, the `:` that
    breaks it is line 3, column 2."""
    with pytest.raises(YamlError) as err:
        parse_yaml("name: x\na: [1, 2\nb: 3\n")
    assert str(err.value) == ("invalid YAML at line 3, column 2: expected ',' or ']', but got ':' "
                              "(while parsing a flow sequence started on line 2)")


def test_a_file_that_is_not_utf8_names_the_file_and_the_offset_of_its_first_bad_byte(tmp_path):
    """`name: x\\n` is 8 bytes (offsets 0-7), so the stray Latin-1 byte 0xe9 after it sits at offset 8:
    the message points there, with the byte itself, so the user can find it."""
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: x\n\xe9t\xe9: 1\n")
    with pytest.raises(YamlError) as err:
        read_text(path, "spec file")
    assert str(err.value) == f"the spec file {path} is not UTF-8 text (byte 8: b'\\xe9'); save it as UTF-8"


@pytest.mark.parametrize("text, where, char", [("name: x\x07\n", "line 1, column 8", "U+0007"),
                                               ("name: ok\nseeds: [0]\x1b\n", "line 2, column 11", "U+001B"),
                                               ("a: 1\x00", "line 1, column 5", "U+0000")])
def test_a_control_character_is_refused_with_its_line_and_column_not_a_traceback(text, where, char):
    """PyYAML's reader refuses them while the loader is built, before parsing starts."""
    with pytest.raises(YamlError) as e:
        parse_yaml(text)
    assert f"at {where}: the character {char} is not allowed" in str(e.value)
    assert parse_yaml("a: 'x\ty'\n") == {"a": "x\ty"}              # a tab is no control character to YAML


# ----- writing YAML that reads back -----

TEXTS_1_1_AND_1_2_READ_APART = ["1e3", "+1E5", "-2.e1", "0o17", "1.", "a\x85b", "a\u2028b", "a\u2029b"]


@pytest.mark.parametrize("text", TEXTS_1_1_AND_1_2_READ_APART + ["yes", "010", "0x10", "1_000", "~", "null", "1:30",
                                                                  "plain", "é", "trailing "])
def test_dumped_text_reads_back_as_the_same_text(text):
    """`dump_yaml` writes what `parse_yaml` reads back unchanged: PyYAML's dumper speaks YAML 1.1, which
    writes `1e3` (a string to 1.1) bare, read back by YAML 1.2 as the number 1000.0 (a sweep named 1e3
    wrote a spec.yaml it could not read back), and writes U+0085 raw, which a reader folds as a line break."""
    data = {text: [text, {"k": text}]}
    assert parse_yaml(yaml_io.dump_yaml(data)) == data
    assert parse_yaml(yaml_io.dump_yaml([text], default_flow_style=True)) == [text]
