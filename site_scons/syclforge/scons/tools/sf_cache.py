"""SCons glue for `cache=`: a local CacheDir, and behind it, for
cache=http(s)://..., the HTTP server of syclforge.remote_cache (the logic,
unit-tested there). README.md, "Shared cache".

SCons's own extension point: CacheDir(path, custom_class=...), with
CACHEDIR_CLASS in every environment. A local miss asks the server; what the
server hands back is checked and put into the local cache, from which SCons
retrieves it as from any CacheDir. After a build, what was built goes to
the local cache and (unless cache_upload=0) to the server.

env.SyclforgeCacheKey(nodes, identity) adds the toolchain's identity to
the signature of every file built for those nodes.
"""
import os

import SCons.Action
import SCons.CacheDir
import SCons.Errors
from SCons.Script import DefaultEnvironment

from syclforge import remote_cache
from syclforge.errors import SyclforgeError


class SyclforgeCacheDir(SCons.CacheDir.CacheDir):
    """The local CacheDir, with an HTTP cache as its second level."""

    remote = None      # remote_cache.HttpCache, shared by every instance

    def _remote_on(self, node):
        return (self.remote is not None and not self.remote.disabled and self.is_enabled()
                and SCons.Action.execute_actions and not SCons.CacheDir.cache_show and not node.nocache)

    def retrieve(self, node):
        if self._remote_on(node):
            cachedir, cachefile = self.cachepath(node)
            if cachefile and not os.path.exists(cachefile):
                self.remote.fetch(remote_cache.action_key(node.get_cachedir_bsig()), cachefile,
                                  node.get_internal_path())
        return super().retrieve(node)

    def push(self, node):
        result = super().push(node)
        if self._remote_on(node) and self.remote.upload and not self.is_readonly():
            path = node.get_internal_path()
            if os.path.isfile(path) and not os.path.islink(path):
                self.remote.store(remote_cache.action_key(node.get_cachedir_bsig()), path,
                                  path.replace(os.sep, "/"), executable=os.access(path, os.X_OK))
        return result


def _configure_cache(env, config, *, headers=(), upload=True, timeouts=None, report=None):
    """CacheDir for config (remote_cache.CacheConfig): this environment and
    the default one (which SCons asks for the path), the same class in both."""
    SyclforgeCacheDir.remote = None
    if config.url:
        connect, read = timeouts or (remote_cache.CONNECT_TIMEOUT, remote_cache.READ_TIMEOUT)
        SyclforgeCacheDir.remote = remote_cache.HttpCache(
            config.url, headers=headers, upload=upload, connect_timeout=connect, read_timeout=read,
            report=report)
    local = os.path.abspath(config.local)
    try:   # SCons makes the cache folder itself, not its parents
        os.makedirs(os.path.dirname(local), exist_ok=True)
        for e in (env, DefaultEnvironment()):
            e.CacheDir(local, custom_class=SyclforgeCacheDir)
    except (OSError, SCons.Errors.SConsEnvironmentError) as e:
        raise SyclforgeError(f"cache: cannot use {local} as the local cache folder ({e}); "
                             f"give cache= a writable folder (or set XDG_CACHE_HOME for "
                             f"cache=http://...)") from None
    return SyclforgeCacheDir.remote


def built_nodes(roots):
    """Every node with a builder that roots are made from, through sources
    and explicit dependencies (not scanned headers: nothing builds them)."""
    seen, out, stack = set(), [], list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.has_builder():
            out.append(node)
            stack.extend(node.sources)
            stack.extend(node.depends)
    return out


def _cache_key(env, roots, identity):
    """identity (a string) enters the build signature, and so the cache
    key, of every file built for roots."""
    value = env.Value(identity)
    for node in built_nodes(env.Flatten(roots)):
        env.Depends(node, value)
    return value


def generate(env):
    env.AddMethod(_configure_cache, "SyclforgeCache")
    env.AddMethod(_cache_key, "SyclforgeCacheKey")


def exists(env):
    return True
