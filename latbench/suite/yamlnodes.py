"""Safe YAML loading that remembers the line of every value, so errors can say where they are."""

from __future__ import annotations

from typing import Any

import yaml

from latbench.errors import SuiteError

MAX_NODES = 100_000  # more values than any real suite has: stops alias ("billion laughs") bombs
MAX_BYTES = 1 << 20
MAX_DEPTH = 50  # nesting levels; real suites use 4, and PyYAML's composer recurses per level

Path = tuple[Any, ...]
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def load_with_lines(text: str, filename: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML safely. Returns the data and {path: 1-based line} for every mapping key and item."""
    if len(text) > MAX_BYTES:
        raise SuiteError(f"file is {len(text)} characters, more than a suite may have ({MAX_BYTES})",
                         where=filename, hint="a suite is a short YAML file; split it or give the right path")
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader already refuses control characters
        root = loader.get_single_node()
        lines: dict[Path, int] = {}
        budget = [MAX_NODES]

        def walk(node: yaml.Node, path: Path) -> Any:
            budget[0] -= 1
            if budget[0] < 0:
                raise SuiteError(f"more than {MAX_NODES} values (an alias bomb?)", where=f"{filename}:{_line(node)}",
                                 hint="write the suite out plainly")
            if len(path) > MAX_DEPTH:
                raise SuiteError(f"values nested more than {MAX_DEPTH} levels deep", where=f"{filename}:{_line(node)}",
                                 hint="write the suite out plainly")
            lines.setdefault(path, _line(node))
            if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
                raise SuiteError(f"tag {node.tag!r} is not allowed", where=f"{filename}:{_line(node)}",
                                 hint="suites hold plain mappings, lists and scalars only")
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    key = walk(key_node, path + ("<key>",))
                    if not isinstance(key, (str, int, float, bool)) or key is None:
                        raise SuiteError(f"mapping key must be a plain value, not {type(key).__name__}",
                                         where=f"{filename}:{_line(key_node)}", hint="use a plain word as the key")
                    if key in out:
                        raise SuiteError(f"duplicate key {key!r}", where=f"{filename}:{_line(key_node)}",
                                         hint="each key may appear once in a mapping")
                    lines[path + (key,)] = _line(key_node)
                    out[key] = walk(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                return [walk(item, path + (i,)) for i, item in enumerate(node.value)]
            try:
                return loader.construct_object(node, deep=True)
            except (ValueError, KeyError, OverflowError) as exc:  # e.g. 2001-13-45, !!bool maybe, 5000 digits
                raise SuiteError(f"cannot read the value {str(node.value)[:40]!r} ({str(exc).split(';')[0]})",
                                 where=f"{filename}:{_line(node)}", hint="quote it to make it a string") from None

        data = walk(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise SuiteError(f"invalid YAML: {problem}", where=f"{filename}{line}",
                         hint="fix the syntax (plain mappings, lists and scalars only)") from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, but a position
        raise SuiteError(f"invalid YAML: {str(exc).splitlines()[0]}",
                         where=f"{filename}:{text.count(chr(10), 0, exc.position) + 1}",
                         hint="remove the control character (suites are plain text)") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"invalid YAML: {str(exc).splitlines()[0]}", where=filename,
                         hint="fix the syntax (plain mappings, lists and scalars only)") from None
    except RecursionError:
        raise SuiteError(f"values nested too deeply (more than {MAX_DEPTH} levels)", where=filename,
                         hint="write the suite out plainly") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
