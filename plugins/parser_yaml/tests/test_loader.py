"""The YAML loader: no YAML 1.1 surprises, no unsafe tags, marks kept."""

from collections.abc import Callable

import pytest

from pinball_parser_yaml import YamlParser
from pinball_parser_yaml.loader import Mark, MarkedDict, YamlLoadError, load

Parse = Callable[[str], YamlParser]


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n", "On", "NO"])
def test_yaml_11_booleans_stay_text(word: str) -> None:
    assert load(f"{word}: {word}") == {word: word}


@pytest.mark.parametrize("word", ["true", "false", "True", "FALSE"])
def test_only_true_and_false_are_booleans(word: str) -> None:
    assert load(f"x: {word}") == {"x": word.lower() == "true"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12:30", "12:30"),
        ("1:02:03", "1:02:03"),
        ("0755", "0755"),
        ("010", "010"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T00:30:00", "2026-01-01T00:30:00"),
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("~", None),
        ("", None),
    ],
)
def test_scalars_follow_yaml_12_like_rules(text: str, value: object) -> None:
    assert load(f"x: {text}") == {"x": value}


def test_jobs_named_like_yaml_11_booleans(parse: Parse) -> None:
    parser = parse(
        """
        workflows:
          on:
            jobs:
              yes: {command: "true"}
              no: {command: "true", depends_on: [yes]}
        """
    )

    assert parser.validate() == []
    assert parser.workflow_names() == ["on"]
    assert len(parser.instance_tokens("on", "1")) == 2


def test_marks_and_duplicates_are_kept() -> None:
    data = load("a: 1\nb:\n  - x\n  - y\na: 2\n")

    assert isinstance(data, MarkedDict)
    assert data == {"a": 1, "b": ["x", "y"]}
    assert data.key_marks["b"] == Mark(2, 1)
    assert data["b"].item_marks == [Mark(3, 5), Mark(4, 5)]
    assert data.duplicates == [("a", Mark(5, 1))]


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['echo hacked']",
        "!!python/name:os.system",
        "!!timestamp 2026-01-01",
        "!custom x",
    ],
)
def test_unsafe_tags_are_refused(tag: str) -> None:
    with pytest.raises(YamlLoadError, match="is refused") as raised:
        load(f"x: {tag}")
    assert (raised.value.line, raised.value.column) == (1, 4)


def test_unsafe_tag_in_a_workflow_file(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w:
            jobs:
              a: {command: !!python/object/apply:os.system ["echo hacked"]}
        """
    )

    (problem,) = parser.validate()
    assert problem.startswith(f"{parser.path}:4:20: the YAML tag")
    assert "python/object/apply:os.system" in problem
    assert parser.workflow_names() == []


def test_syntax_error_names_its_place(parse: Parse) -> None:
    parser = parse("workflows:\n  w: {jobs: [\n")

    (problem,) = parser.validate()
    assert problem.startswith(f"{parser.path}:3:1: ")


def test_several_documents_are_refused() -> None:
    with pytest.raises(YamlLoadError, match="single document"):
        load("a: 1\n---\nb: 2\n")


def test_anchors_and_aliases_still_work() -> None:
    assert load("base: &b [1, 2]\ncopy: *b\n") == {"base": [1, 2], "copy": [1, 2]}


def test_an_unclosed_quote_points_to_where_it_opens(parse: Parse) -> None:
    parser = parse(
        """\
        workflows:
          w1:
            jobs:
              a:
                command: "echo hi
              b: {command: echo}
        """
    )

    (problem,) = parser.validate()
    assert problem == (
        f"{parser.path}:5:18: not valid YAML: while scanning a quoted scalar that "
        "starts here, found unexpected end of stream at line 7, column 1"
    )


def test_an_unclosed_bracket_points_to_where_it_opens() -> None:
    with pytest.raises(YamlLoadError) as raised:
        load("a: [1, 2\nb: 3\n")

    assert (raised.value.line, raised.value.column) == (1, 4)
    assert raised.value.reason.endswith("at line 2, column 2")


def test_a_file_that_does_not_parse_is_named_for_its_workflows(parse: Parse) -> None:
    parser = parse('workflows:\n  w1:\n    jobs:\n      a: {command: "true}\n')

    with pytest.raises(ValueError) as raised:
        parser.instance_tokens("w1", "1")

    message = str(raised.value)
    assert message.startswith(f"no workflow 'w1' in {parser.path}; known: none")
    assert f"\n  {parser.path}:4:20: not valid YAML: while scanning" in message
