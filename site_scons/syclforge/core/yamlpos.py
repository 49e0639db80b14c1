"""Load YAML into plain dicts/lists while remembering where each value was.

PyYAML's loaders throw line numbers away and silently keep the last of two
equal keys. Config errors must say file:line, and a duplicated key is almost
always a mistake, so we compose the document to nodes (which carry marks)
and build the data ourselves.

Paths are tuples of dict keys and list indexes from the document root, e.g.
('targets', 'nvidia', 'archs', 1); the root is ().
"""
import yaml

from syclforge.errors import ConfigError

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def load(path):
    """Read and parse a YAML file; return (data, lines).

    data is None for an empty document. lines maps each path to its 1-based
    line: for a mapping entry the line of its KEY (what a user looks for),
    for a list item the line of the item. OSError is left to the caller,
    which knows what a missing file means for it.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return loads(text, path)


def loads(text, path="<string>"):
    """Like load(), from a string; path only names the source in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, path) from None
    except yaml.YAMLError as e:
        raise ConfigError(path, None, None, f"invalid YAML: {e}") from None
    lines = {}
    if root is None:
        return None, lines
    # Scalars (ints, bools, strings...) are typed by the same rules as
    # yaml.safe_load; only the containers are built here.
    scalars = yaml.SafeLoader("")
    try:
        data = _build(root, (), root.start_mark.line + 1, lines, scalars, path)
    except yaml.MarkedYAMLError as e:   # e.g. an unknown !tag on a scalar
        raise _syntax_error(e, path) from None
    finally:
        scalars.dispose()
    return data, lines


def _syntax_error(e, path):
    """Report at the line where PyYAML noticed the problem; its context
    (e.g. the unclosed '[' that caused it) may be lines earlier, so say
    where that started too."""
    mark = e.problem_mark or e.context_mark
    message = f"invalid YAML: {e.problem or e.context}"
    if e.context and e.context_mark and e.problem_mark:
        message += f" ({e.context} started on line {e.context_mark.line + 1})"
    return ConfigError(path, mark.line + 1 if mark else None, None, message)


def _build(node, where, line, lines, scalars, path):
    lines[where] = line
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _unsupported(node, where, path)
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(path, key_node.start_mark.line + 1, dotted(where),
                                  "mapping keys must be plain names, not lists or mappings")
            # The key as written: 'on'/'yes' stay names instead of turning
            # into booleans, and '<<' merge keys are not expanded (so they
            # show up as unknown keys rather than silently merging).
            key = key_node.value
            key_line = key_node.start_mark.line + 1
            if key in out:
                raise ConfigError(path, key_line, dotted(where + (key,)),
                                  f"duplicate key '{key}' (first defined on line "
                                  f"{lines[where + (key,)]}); YAML would silently keep "
                                  "only the last one, so remove one of them")
            out[key] = _build(value_node, where + (key,), key_line, lines, scalars, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _unsupported(node, where, path)
        return [_build(item, where + (i,), item.start_mark.line + 1, lines, scalars, path)
                for i, item in enumerate(node.value)]
    return scalars.construct_object(node)


def _unsupported(node, where, path):
    return ConfigError(path, node.start_mark.line + 1, dotted(where) or None,
                       f"unsupported YAML tag {node.tag}")


def dotted(where):
    """('targets', 'nvidia', 'archs', 1) -> 'targets.nvidia.archs[1]'."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(lines, where):
    """Line of where, or of its nearest ancestor that has one (a missing
    key is reported on the line of the mapping that lacks it)."""
    where = tuple(where)
    while where and where not in lines:
        where = where[:-1]
    return lines.get(where)
