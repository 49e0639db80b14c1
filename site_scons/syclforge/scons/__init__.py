"""syclforge's SCons layer: what a project's SConstruct uses.

    import syclforge.scons as sf

    project = sf.Project(name="saxpy", version="1.0")
    for env in project.envs():                  # one per device target this machine can build
        app = env.SyclProgram("saxpy", ["main.cpp"], device=["device.cpp"])
        project.release(env, programs=app)
    project.finish()

Project reads targets.yaml, detects the installed SYCL toolchains, resolves
each target to one (the explanation is `scons explain`), and gives one
configured Environment per buildable target. It owns the variables
(target=, toolchain=, strict=, cache=, verbose=, bundle=, merge=, docker=)
and the aliases (toolchains, explain, release, verify, numerics), prints the
end-of-build summary, and writes compile_commands.json. Everything it
decides comes from syclforge.core (plain Python, unit-tested); this is glue.
"""
import atexit
import glob
import os
import sys

from syclforge.scons import paths

TOOLPATH = [paths.TOOLS]
__all__ = ["Project", "TOOLPATH"]


def _fail(message, status=2):
    from SCons.Script import Exit
    print(f"syclforge: error: {message}", file=sys.stderr)
    Exit(status)


class Project:
    """One project's build. Keyword arguments:

    name, version   the release bundles' name: <name>-<version>-<target>.tar.gz
    targets         the device targets file (default: targets.yaml at the top)
    toolchains      a folder of extra or overriding toolchain family files
                    (default: the project's toolchains/ if it has one)
    help            text added to `scons -h` (the project's own aliases)
    variables       extra SCons variables (a list of tuples, as Variables.AddVariables)
    """

    def __init__(self, *, name="syclforge", version="0.1.0", targets="targets.yaml", toolchains=None,
                 help="", variables=()):
        from SCons.Script import (ARGUMENTS, COMMAND_LINE_TARGETS, BoolVariable, Dir,
                                  EnumVariable, Environment, GetOption, Help, SetOption,
                                  Variables)
        from syclforge.scons import registry
        self.name, self.version = name, version
        self.top = Dir("#").abspath
        # The shared cache's request headers (a credential, README.md "Shared
        # cache") leave the environment before any tool runs: no child sees them.
        self._cache_headers = os.environ.pop("SYCLFORGE_CACHE_HEADERS", "")
        if GetOption("num_jobs") <= 1:
            SetOption("num_jobs", os.cpu_count() or 1)
        v = Variables(None, ARGUMENTS)
        v.AddVariables(
            ("target", "device targets to build: 'all' or a comma list of names from targets.yaml", "all"),
            ("toolchain", "pin SYCL toolchain families (see `scons toolchains`): NAME builds every chosen "
                          "target with it; NAME,NAME or 'all' builds each target with each of them side by "
                          "side; a pinned toolchain that cannot serve a target is SKIPPED with the reason. "
                          "The toolchain resolution picks unpinned builds in build/<target>/, any other in "
                          "build/<target>/<toolchain>/", ""),
            BoolVariable("strict", "make a SKIPPED target an error (exit 1)", False),
            ("cache", "build cache: DIR, SCons's CacheDir (a clean checkout rebuilds from it), or "
                      "http(s)://HOST[:PORT]/PREFIX, an HTTP cache in Bazel's layout (/cas/, /ac/) shared "
                      "across machines, behind a local CacheDir in $XDG_CACHE_HOME/syclforge/cachedir; "
                      "a server that does not answer is reported once and the build goes on without it. "
                      "Request headers (a token) from $SYCLFORGE_CACHE_HEADERS, never printed "
                      "(README.md \"Shared cache\")", ""),
            BoolVariable("cache_upload", "with cache=http(s)://...: upload what this build made to the server; "
                                         "0 only reads (pull-request builds)", True),
            EnumVariable("format", "output of `scons toolchains`", "table", allowed_values=("table", "json")),
            BoolVariable("verbose", "print whole command lines instead of short ones", False),
            BoolVariable("docker", "build each chosen target's vendor container image and run its numerics "
                                   "inside (toolchains/containers/, README.md \"Containers\")", False),
            ("bundle", "release archive(s) or extracted folder for `scons verify` (default: dist/*.tar.gz)", ""),
            ("merge", "`scons numerics merge=DIR[,DIR...]`: merge the reports other machines or containers "
                      "wrote (their build/numerics folders) into build/numerics, instead of running", ""),
            *variables)
        self.base = Environment(variables=v, ENV=os.environ.copy(), tools=["default"], toolpath=TOOLPATH)
        registry._entries(self.base)
        self.verbs = set(COMMAND_LINE_TARGETS)
        Help(_HELP.format(name=name, project_help=help.rstrip() + "\n" if help else "",
                          variables=v.GenerateHelpText(self.base)), append=False)
        self.plans, self.releases, self.built, self._numerics, self.envs_made = [], [], {}, None, None
        if GetOption("help"):
            self.help_only = True
            return
        self.help_only = False
        unknown = v.UnknownVariables()
        if unknown:
            _fail(f"unknown variable(s) {', '.join(sorted(unknown))}; `scons -h` lists them")
        if "verify" in self.verbs:
            from SCons.Script import Exit
            from syclforge import cli
            bundles = (self.base["bundle"].split(",") if self.base["bundle"]
                       else sorted(glob.glob(os.path.join(self.top, "dist", "*.tar.gz"))))
            if not bundles:
                _fail("no bundle to verify: give bundle=PATH or run `scons release` first")
            Exit(cli.verify(bundles))
        self._resolve(targets, toolchains)

    # ------------------------------------------------------------------ setup
    def _resolve(self, targets, toolchains):
        from SCons.Script import Exit
        from syclforge import cli
        from syclforge.errors import SyclforgeError
        try:
            self.ctx = cli.Context.load(self.top, targets=targets, toolchains=toolchains,
                                        target=self.base["target"], pin=self.base["toolchain"] or None)
        except SyclforgeError as e:
            _fail(str(e))
        self.plans = self.ctx.plans
        # cache=: a local CacheDir, with an HTTP cache as second level for a
        # URL (scons/tools/sf_cache.py, syclforge/remote_cache.py).
        from syclforge import remote_cache
        try:
            self._cache = remote_cache.parse_cache(self.base["cache"])
            self._cache_settings = {}
            if self._cache and self._cache.url:
                self._cache_settings = dict(headers=remote_cache.parse_headers(self._cache_headers),
                                            upload=self.base["cache_upload"],
                                            timeouts=remote_cache.timeouts(os.environ))
        except SyclforgeError as e:
            _fail(str(e))
        if self.base["docker"]:   # the numerics run inside each target's vendor image, not here
            from syclforge.containers import docker_run
            try:   # the build inside uses an HTTP cache= too
                inside = self._cache and remote_cache.container_settings(
                    self._cache, upload=self.base["cache_upload"], headers_text=self._cache_headers,
                    environ=os.environ, work=docker_run.WORK_MOUNT)
            except SyclforgeError as e:
                _fail(str(e))
            Exit(docker_run.scons_main(self.top, self.ctx.chosen, strict=self.base["strict"],
                                       cache=inside or None))
        self._cache_headers = None
        if "toolchains" in self.verbs:
            print(cli.toolchains_text(self.ctx, as_json=self.base["format"] == "json"))
            Exit(0)
        if "explain" in self.verbs:
            print(cli.explain_text(self.ctx))
            Exit(0)
        self.base.Tool("sf_cache")
        try:
            remote = self.base.SyclforgeCache(self._cache, **self._cache_settings) if self._cache else None
        except SyclforgeError as e:
            _fail(str(e))
        if remote is not None:
            atexit.register(lambda: remote.summary() and print(remote.summary()))
        self._digests = remote_cache.DigestMemo(os.path.join(self.top, "build", ".toolchain-digests.json"))
        skipped = [p for p in self.plans if not p.ok]
        if skipped and self.base["strict"]:
            _fail("strict=1 and some targets cannot be built:\n" +
                  "\n".join(f"  {p.target.name}: {p.brief_reason} (scons explain target={p.target.name})"
                            for p in skipped), status=1)
        self.release_info = {}
        if "release" in self.verbs:
            from syclforge.release import bundle
            try:
                self.release_info = {"git": bundle.git_state(self.top),
                                     "source_date_epoch": bundle.source_date_epoch(self.top, os.environ)}
            except SyclforgeError as e:
                _fail(str(e))

    def envs(self):
        """One configured Environment per (target, toolchain) this machine can
        build: its builders are SyclProgram, SyclSharedLibrary and SyclObject;
        outputs go to build/<target>/ (env["SF_BUILD_DIR"]), or
        build/<target>/<toolchain>/ for a toolchain other than the one the
        resolution picks (toolchain=a,b). What they build is the target's
        alias and the default (`scons`, `scons <target>`). env["SF_LABEL"]
        names the variant: 'cpu-x86' or 'cpu-x86/acpp'."""
        if self.help_only:
            return []
        if self.envs_made is not None:
            return list(self.envs_made)
        out = []
        for plan in self.plans:
            if plan.ok:
                env = self.base.Clone(tools=[plan.toolchain.family.data["scons_tool"]])
                env.SyclforgeConfigure(plan.toolchain, plan.target, out="#" + plan.build_dir,
                                       images=plan.images)
                env["SF_PLAN"] = plan
                env["SF_LABEL"] = plan.label
                env["SF_BUILD_DIR"] = "#" + plan.build_dir
                out.append(env)
        self.envs_made = out
        return list(out)

    def build(self, sconscript, **exports):
        """Run sconscript once per buildable (target, toolchain), with `env`
        (and exports) exported and its objects under <build dir>/obj/.
        Returns {env["SF_LABEL"]: what the SConscript returned}."""
        from SCons.Script import SConscript
        where = os.path.dirname(sconscript)
        results = {}
        for env in self.envs():
            d = env["SF_BUILD_DIR"]
            results[env["SF_LABEL"]] = SConscript(sconscript, exports={"env": env, **exports},
                                                  variant_dir=f"{d}/obj/{where}" if where else f"{d}/obj",
                                                  duplicate=False)
        return results

    def add(self, env, nodes):
        """Count nodes as part of env's target (`scons <target>`, the summary)."""
        self.built.setdefault(env["SF_LABEL"], []).extend(env.Flatten([nodes]))

    # ------------------------------------------------------------------ verbs
    def release(self, env, *, programs=(), libraries=(), headers=None, models=None):
        """`scons release`: dist/<name>-<version>-<target>.tar.gz for env's
        target, with programs in bin/, libraries in lib/, a headers folder
        in include/ and model folders in models/ (README.md, "Releases")."""
        self.add(env, [programs, libraries])
        if "release" not in self.verbs:
            return []
        node = env.Clone(tools=["sf_bundle"], toolpath=TOOLPATH).SyclforgeBundle(
            env.Flatten([libraries]), env.Flatten([programs]), headers=headers, models=models,
            name=self.name, version=self.version, **self.release_info)
        self.releases += node
        return node

    def numerics(self, plugin, files):
        """`scons numerics`: every image of every built target through the
        numerics plugin (a Python file, see syclforge.numerics), against
        float64 and each other. files(build_dir) -> {name: path} of the
        artifacts the plugin runs, given the absolute build folder of each
        (target, toolchain) (build/<target>/ or build/<target>/<toolchain>/)."""
        self._numerics = (plugin, files)

    def alias(self, name, depends, action, comstr):
        """A project verb (`scons <name>`) that runs action after depends are built."""
        node = self.base.Alias(name, depends, self.base.Action(action, None if self.base["verbose"] else comstr))
        self.base.AlwaysBuild(node)
        return node

    # ------------------------------------------------------------------ end
    def finish(self):
        """Aliases, the default targets, compile_commands.json and the summary."""
        from SCons.Script import Alias, Default
        from syclforge.scons import registry
        if self.help_only:
            return
        from syclforge import remote_cache
        # The toolchain (family, version, its binaries' content) and the image
        # list are in every built file's signature, so in every cache key.
        aliases = []
        for env in self.envs_made or []:
            plan = env["SF_PLAN"]
            t = plan.target.name
            nodes = registry.outputs(env) + self.built.get(plan.label, [])
            env.SyclforgeCacheKey(nodes, remote_cache.toolchain_identity(plan.toolchain, plan.target,
                                                                         plan.images, self._digests))
            aliases.append(Alias(t, nodes))
        self._digests.save()
        db = os.path.join(self.top, "compile_commands.json")
        entries = registry.entries(self.base)
        if entries:
            text = registry.render(entries, self.top)
            node = self.base.Command(db, self.base.Value(text), self.base.Action(registry.write_action, None))
            self.base.NoCache(node)   # it names this checkout's absolute paths
            aliases.append(node)
        Default(aliases or Alias("nothing-to-build", [], []))
        # A bundle carries the commit, so its key never comes back; it is quick
        # to make and large: kept out of the caches.
        self.base.NoCache(self.releases)
        Alias("release", self.releases)
        if "numerics" in self.verbs:
            self._numerics_alias()
        atexit.register(self._summary)

    def _numerics_alias(self):
        from SCons.Script import Alias
        from syclforge import numerics
        from syclforge.errors import SyclforgeError
        if not self._numerics:
            _fail("numerics: this project plugs no numerics in (Project.numerics in its SConstruct)")
        plugin_path, files = self._numerics
        plugin_path = os.path.join(self.top, plugin_path)
        out = os.path.join(self.top, "build", "numerics")
        perturb = os.environ.get("SYCLFORGE_NUMERICS_PERTURB", "")   # the harness's own test only
        if not self.base["merge"] and not any(p.ok for p in self.plans):
            _fail("numerics: no chosen target can be built here, so there is nothing to run:\n" +
                  "\n".join(f"  {p.target.name}: {p.brief_reason} (scons explain target={p.target.name})"
                            for p in self.plans))
        merge_dirs = [d for d in self.base["merge"].split(",") if d]
        try:   # a bad report or a missing plugin is an error before anything runs
            if not os.path.isfile(plugin_path):
                raise SyclforgeError(f"{plugin_path}: no such numerics plugin (Project.numerics in SConstruct)")
            for src in merge_dirs:
                numerics.load_report(src)
        except SyclforgeError as e:
            _fail(str(e))
        python = os.path.join(self.top, ".venv", "bin", "python")
        python = python if os.path.exists(python) else sys.executable
        plans = [p for p in self.plans if p.ok]

        def run(target, source, env):
            try:
                # Loaded here, not while SConscripts are read: SCons puts
                # sys.path back after reading them, and a plugin may extend it.
                plugin = numerics.load_plugin(plugin_path)
                if merge_dirs:
                    report = numerics.merge(self.top, out, merge_dirs, plugin=plugin)
                else:
                    specs = [{"target": p.target.name, "toolchain": p.toolchain.name, "images": list(p.images),
                              "files": files(os.path.join(self.top, p.build_dir))} for p in plans]
                    report = numerics.run_local(self.top, specs, out, plugin=plugin, perturb=perturb,
                                                python=python)
            except SyclforgeError as e:
                print(f"syclforge: error: {e}", file=sys.stderr)
                return 2
            return 1 if report["violations"] else 0

        self.base.AlwaysBuild(Alias("numerics", [] if merge_dirs else [Alias(p.target.name) for p in plans],
                                    self.base.Action(run, "  NUMERICS " + ("merge " + self.base["merge"]
                                                                           if merge_dirs else "every device image"))))

    def _summary(self):
        from SCons.Script import GetBuildFailures
        from syclforge.core import summary
        failures = [(str(f.node), f.errstr) for f in GetBuildFailures() if f.node is not None]
        rows = []
        for p in self.plans:
            if not p.ok:
                rows.append(summary.Row(p.target.name, "SKIPPED", "", (),
                                        f"{p.brief_reason} (scons explain target={p.target.name})"))
                continue
            failed = summary.first_failure(p.build_dir, failures,
                                           inner=[q.build_dir for q in self.plans if q.variant and not p.variant])
            images = tuple(p.images) + tuple(f"(not {d})" for d in p.dropped)
            reason = f"{failed[0]}: {failed[1]} (output above; nothing half-written was kept)" if failed else ""
            rows.append(summary.Row(p.target.name, "FAILED" if failed else "BUILT", p.toolchain.name,
                                    images, reason, note=p.note if p.dropped else ""))
        if rows:
            print("\n" + summary.format_summary(rows))


_HELP = """
{name}: built with syclforge for every device target of targets.yaml.

usage: scons [VARIABLE=VALUE ...] [ALIAS ...]

aliases:
  (none)        build the targets chosen by target= (default: all), then print
                one row per target: BUILT with its toolchain and images, or
                SKIPPED with the reason
  toolchains    list the toolchain families found on this machine
                (format=json for one JSON object per family)
  explain       for each chosen target, say why every toolchain family was
                accepted or refused (like Bazel's --toolchain_resolution_debug)
  <target>      build one target, e.g. `scons cpu-x86`
  release       also write dist/<name>-<version>-<target>.tar.gz per built
                target (README.md, "Releases"); SOURCE_DATE_EPOCH is honoured
  verify        check release bundles (bundle=PATH): checksums, manifest, SBOM
  numerics      build the chosen targets, then run the project's numerics
                plugin on every device image this machine can run, against
                float64 and against each other (syclforge.numerics):
                a table, build/numerics/report.json and report.png; any
                violation is named and fails the build (exit status 2).
                With merge=DIR,...: merge other machines' reports instead
{project_help}
variables:
{variables}
outputs:
  build/<target>/bin/, build/<target>/lib/   programs and libraries per target
  build/<target>/<toolchain>/...             the same for another toolchain (toolchain=a,b)
  compile_commands.json                      host and device sources, for clangd
  dist/<name>-<version>-<target>.tar.gz      `scons release`: a relocatable bundle

environment at run time:
  SYCLFORGE_IMAGE=<id>    force one device image (an ISA/arch id or 'spirv')
  SYCLFORGE_VERBOSE=1     report the chosen device and image on stderr
  SYCLFORGE_CPU_ISAS=avx2,sse4.2
                          use only these of the CPU's ISAs: an AVX-512 machine
                          runs as an AVX2 host, the images above are refused
"""
