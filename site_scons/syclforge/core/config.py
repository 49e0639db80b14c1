"""targets.yaml: load, validate against targets.schema.json, build Targets.

The schema is the single source of what is allowed (keys, vendors, archs);
this module only turns jsonschema's errors into messages a user can act on:
file:line: dotted.key: what is wrong and what is allowed.
"""
import difflib
import functools
import json
from pathlib import Path

from jsonschema import Draft202012Validator

from syclforge.core import yamlpos
from syclforge.errors import ConfigError, SyclforgeError
from syclforge.core.model import Image, Target

# Why a required key matters, appended to "missing required key".
_REQUIRED_HINTS = {
    "version": "add 'version: 1' at the top",
    "targets": "add a 'targets:' mapping with one entry per device target",
    "description": "one line saying which devices this target is for",
    "vendor": "one of x86, intel, nvidia, amd",
    "device": "cpu or gpu",
    "isas": "a cpu target lists its native ISAs, best first, e.g. [avx2]",
    "archs": "a gpu target lists its native archs, best first, e.g. [sm_90]",
}

# jsonschema type names as a YAML author thinks of them.
_EXPECTED = {"object": "a mapping", "array": "a list", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "true or false"}


def schema_path():
    return Path(__file__).with_name("targets.schema.json")


@functools.lru_cache(maxsize=None)
def _validator():
    with open(schema_path(), encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


def load_targets(path):
    """Parse and validate a targets file; return {name: Target} in file order.

    Raises ConfigError for a missing, unreadable, empty or invalid file.
    """
    try:
        data, lines = yamlpos.load(path)
    except FileNotFoundError:
        raise ConfigError(path, None, None,
                          "file not found; create it with 'version: 1' and a 'targets:' "
                          "mapping of device targets (see targets.yaml in the syclforge "
                          "repository)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, None, None, f"cannot read file: {e}") from None
    if data is None:
        raise ConfigError(path, 1, None,
                          "file is empty; expected 'version: 1' and a 'targets:' mapping")
    _check(path, data, lines)
    targets = {}
    for name, t in data["targets"].items():
        native = [Image(i, "native") for i in t.get("isas", []) + t.get("archs", [])]
        portable = [Image(t["portable"], "portable")] if "portable" in t else []
        targets[name] = Target(name, t["description"], t["vendor"], t["device"],
                               tuple(native + portable), lines[("targets", name)])
    return targets


def _check(path, data, lines):
    """Raise ConfigError for the first schema error in file order.

    jsonschema yields errors in schema order, which would make the reported
    error depend on the schema's layout; sorting by (line, key) reports the
    one nearest the top of the file, the same one every run. Two exceptions:
    a missing key goes last, since it is often the result of a misspelled
    one ('arch' for 'archs') whose error says more; and at one key a wrong
    type goes first ("unknown vendor ['amd']" would only confuse), then an
    unknown value, then a vendor's stricter rule.
    """
    found = []
    for error in _validator().iter_errors(data):
        last = error.validator == "required"
        rank = {"type": 0, "enum": 1}.get(error.validator, 2)
        for where, message in _explain(error, data):
            found.append((last, yamlpos.line_of(lines, where) or 0, yamlpos.dotted(where),
                          rank, message))
    if found:
        _, line, key, _, message = min(found)
        raise ConfigError(path, line, key or None, message)


def _explain(error, data):
    """Yield (path, message) for one jsonschema error; more than one for
    additionalProperties, so each unknown key is reported at its own line."""
    where, inst, value = tuple(error.path), error.instance, error.validator_value
    kind = error.validator
    if "propertyNames" in error.relative_schema_path:
        # jsonschema reports a bad key name at its parent; point at the key.
        yield where + (inst,), (f"invalid target name '{inst}': use lowercase letters, "
                                "digits and '-', starting with a letter")
    elif kind == "not" and value == {}:
        # A key the vendor's if/then switches off (isas on a gpu, portable on amd).
        key, vendor = where[-1], _vendor(data, where)
        if key == "portable":
            yield where, f"vendor {vendor} has no portable image; remove 'portable'"
        else:
            other = "archs" if key == "isas" else "isas"
            yield where, f"'{key}' does not apply to vendor {vendor}; use '{other}'"
    elif kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        for key in inst:
            if key not in allowed:
                yield where + (key,), (f"unknown key '{key}' (allowed: {', '.join(allowed)})"
                                       + _did_you_mean(key, allowed))
    elif kind == "required":
        for key in value:
            if key not in inst:
                hint = _REQUIRED_HINTS.get(key)
                yield where + (key,), f"missing required key '{key}'" + (
                    f" ({hint})" if hint else "")
    elif kind == "type":
        yield where, f"expected {_EXPECTED.get(value, value)}, got {_yaml_type(inst)}"
    elif kind == "enum":
        yield where, _unknown_value(where, inst, value, data)
    elif kind == "const":
        if where == ("version",):
            yield where, f"unsupported version {inst!r}; this syclforge reads version {value}"
        else:
            yield where, (f"must be {value!r} for vendor {_vendor(data, where)}, "
                          f"got {inst!r}")
    elif kind == "minItems":
        yield where, "must not be empty: a target needs at least one native image"
    elif kind == "minProperties":
        yield where, "no targets declared; add at least one"
    elif kind == "minLength":
        yield where, "must not be empty"
    elif kind == "uniqueItems":
        dup = next(x for i, x in enumerate(inst) if x in inst[:i])
        yield where, f"'{dup}' is listed twice"
    else:  # a rule added to the schema later: jsonschema's words still help
        yield where, error.message


def _unknown_value(where, inst, known, data):
    listed = ", ".join(map(str, known))
    if len(where) >= 2 and where[-2] in ("isas", "archs"):
        what = "ISA" if where[-2] == "isas" else "arch"
        return (f"unknown {what} {inst!r} for vendor {_vendor(data, where)}; known: {listed}"
                + _did_you_mean(inst, known))
    if where[-1:] == ("portable",):
        return (f"unknown portable image {inst!r} for vendor {_vendor(data, where)}; "
                f"known: {listed}")
    return f"unknown {where[-1]} {inst!r} (known: {listed})" + _did_you_mean(inst, known)


def _vendor(data, where):
    """The vendor of the target that where points into (for messages)."""
    target = data["targets"][where[1]]
    return target.get("vendor")


def _yaml_type(value):
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):  # the YAML 1.1 trap: `portable: no` is False
        return f"bool {value} (YAML reads yes/no/on/off as booleans; quote it)"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"


def _did_you_mean(word, choices):
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def select_targets(targets, spec, source="targets.yaml"):
    """Pick targets by a spec: 'all', or comma-separated names (in that order).

    source names the file the targets came from, for the error message.
    """
    if spec.strip() == "all":
        return list(targets.values())
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise SyclforgeError(f"no targets selected; name some "
                             f"(known: {', '.join(targets)}) or use 'all'")
    unknown = [n for n in names if n not in targets]
    if unknown:
        quoted = ", ".join(f"'{n}'" for n in unknown)
        hint = _did_you_mean(unknown[0], list(targets)) if len(unknown) == 1 else ""
        raise SyclforgeError(
            f"unknown target{'s' if len(unknown) > 1 else ''} {quoted} "
            f"(known: {', '.join(targets)}); targets are declared in {source}{hint}")
    return [targets[n] for n in names]
