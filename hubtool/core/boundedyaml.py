"""YAML from users and clients, parsed with bounds: size, nesting, and the size the document
would have with every alias expanded.

PyYAML's ``safe_load`` shares aliased nodes, so a "billion laughs" document parses into a small
graph, but everything that then walks it (tag derivation, JSON, a dump) walks 10⁹ nodes and
hangs. Here the composed node graph is measured first, with each shared node counted as often
as it is reached, and refused past ``max_nodes``; a recursive alias or a nesting deeper than
``max_depth`` is refused too. Every refusal is a ``yaml.YAMLError`` (``UnsafeYAML``), so callers
that already handle invalid YAML handle these as well.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: far above any real card's front matter or hubtool.yaml
MAX_NODES = 100_000  # scalars, sequences and mappings, aliases expanded
MAX_DEPTH = 64


class UnsafeYAML(yaml.YAMLError):
    """A document refused for its size, its nesting or its alias expansion."""


def safe_load(
    text: str | bytes,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """``yaml.safe_load`` with bounds; raises ``UnsafeYAML`` (a ``yaml.YAMLError``)."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
    if size > max_bytes:
        raise UnsafeYAML(f"the YAML is {size:,} bytes; at most {max_bytes:,} are read")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise UnsafeYAML(f"the YAML is nested deeper than {max_depth} levels") from None
        if node is None:
            return None
        _measure(node, max_nodes, max_depth)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _measure(root: yaml.Node, max_nodes: int, max_depth: int) -> int:
    """The expanded node count (memoised per shared node), refusing cycles and deep nesting."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UnsafeYAML("the YAML has a recursive alias (a node that contains itself)")
        if depth > max_depth:
            raise UnsafeYAML(f"the YAML is nested deeper than {max_depth} levels")
        active.add(key)
        total = 1
        for child in _children(node):
            total += size(child, depth + 1)
            if total > max_nodes:
                raise UnsafeYAML(
                    f"the YAML expands to more than {max_nodes:,} values (aliases counted "
                    "each time they are used)"
                )
        active.discard(key)
        sizes[key] = total
        return total

    return size(root, 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
