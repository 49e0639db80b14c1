"""SCons conventions shared by every toolchain family's tool.

- Every compile and link writes ${TARGET}.tmp and renames it on success, so
  an interrupted or failed step never leaves a half-written artifact that a
  later build could mistake for a good one.
- Short COMSTR lines unless verbose=1.
"""


def _atomic(com):
    if "${TARGET}.tmp" in com:
        return com
    return com.replace("-o $TARGET", "-o ${TARGET}.tmp") + " && mv -f ${TARGET}.tmp $TARGET"


def generate(env):
    for var in ("CXXCOM", "SHCXXCOM", "LINKCOM", "SHLINKCOM"):
        env[var] = _atomic(env[var])
    if not env.get("verbose"):
        env["CXXCOMSTR"] = env["SHCXXCOMSTR"] = "  CXX      $TARGET"
        env["LINKCOMSTR"] = "  LINK     $TARGET"
        env["SHLINKCOMSTR"] = "  SHLINK   $TARGET"
        env["SF_DEVCSTR"] = "  SPIRV    $TARGET"
        env["SF_AOTSTR"] = "  AOT      $TARGET"
        env["SF_EMBEDSTR"] = "  EMBED    $TARGET"
        env["SF_SYCLCXXSTR"] = "  SYCLCXX  $TARGET"
        env["SF_SYCLLINKSTR"] = "  SYCLLINK $TARGET"


def exists(env):
    return True
