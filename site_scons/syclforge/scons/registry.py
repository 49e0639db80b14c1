"""What the builders compiled, for compile_commands.json (clangd): host
sources with the command SCons runs, device sources with a clang++ -fsycl
line over the same include path, so that kernels get completion too."""
import json
import os
import shlex


class _Entries(list):
    """Shared by every clone of an environment (Clone copies lists, not this)."""

    def __semi_deepcopy__(self):
        return self


def _entries(env):
    if "SF_COMPDB" not in env:
        env["SF_COMPDB"] = _Entries()
    return env["SF_COMPDB"]


def output(env, nodes):
    """A binary a Sycl builder made (for the target's alias and cache key)."""
    if "SF_OUTPUTS" not in env:
        env["SF_OUTPUTS"] = _Entries()
    env["SF_OUTPUTS"].extend(nodes)
    return nodes


def outputs(env):
    return list(env.get("SF_OUTPUTS", []))


def host_source(env, src, obj, shared, overrides):
    com = "$CXX $SHCXXFLAGS $SHCCFLAGS $_CCCOMCOM" if shared else "$CXX $CXXFLAGS $CCFLAGS $_CCCOMCOM"
    args = shlex.split(env.Clone(**overrides).subst(com, target=[obj], source=[obj.sources[0]]))
    _entries(env).append((obj.sources[0].srcnode().abspath, args + ["-c", obj.sources[0].srcnode().abspath,
                                                                    "-o", obj.abspath]))


def device_source(env, src, spirv):
    node = spirv.sources[0].srcnode()
    incs = shlex.split(env.subst("$_CPPINCFLAGS $_CPPDEFFLAGS", target=[spirv], source=[node]))
    _entries(env).append((node.abspath, ["clang++", "-fsycl", "-std=c++17", *incs, "-c", node.abspath,
                                         "-o", spirv.abspath]))


def render(entries, directory):
    """compile_commands.json text: one entry per (file, output), sorted."""
    seen, rows = set(), []
    for file, args in sorted(entries, key=lambda e: (e[0], e[1][-1])):
        if (file, args[-1]) in seen:
            continue
        seen.add((file, args[-1]))
        rows.append({"directory": directory, "file": file, "arguments": args, "output": args[-1]})
    return json.dumps(rows, indent=1) + "\n"


def entries(env):
    return list(_entries(env))


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_action(target, source, env):
    """SCons action: compile_commands.json from its Value source."""
    write(str(target[0]), source[0].read())
