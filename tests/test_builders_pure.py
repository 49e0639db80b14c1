"""The pure parts behind the builders: which headers a device source hands
the runtime compiler (syclforge.core.devsrc), the image table
(syclforge.core.embed) and compile_commands.json (syclforge.scons.registry)."""
import json

import pytest

from syclforge.core import devsrc, embed
from syclforge.scons import registry


def test_virtual_includes_follow_the_compilers_lookup(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "inc" / "ops").mkdir(parents=True)
    (tmp_path / "src" / "k.cpp").write_text('#include <sycl/sycl.hpp>\n#include "ops/a.hpp"\n#include "local.hpp"\n'
                                            '#include "missing.hpp"\n')
    (tmp_path / "src" / "local.hpp").write_text("// beside the source\n")
    (tmp_path / "inc" / "ops" / "a.hpp").write_text('#include "b.hpp"  // relative: ops/b.hpp\n#include "ops/a.hpp"\n')
    (tmp_path / "inc" / "ops" / "b.hpp").write_text("#pragma once\n")
    got = devsrc.virtual_includes(tmp_path / "src" / "k.cpp", [tmp_path / "inc"])
    assert got == [("ops/a.hpp", str(tmp_path / "inc" / "ops" / "a.hpp")),
                   ("ops/b.hpp", str(tmp_path / "inc" / "ops" / "b.hpp")),
                   ("local.hpp", str(tmp_path / "src" / "local.hpp"))]


def test_image_table_embeds_bytes_or_lists_what_the_driver_holds():
    text = embed.render_image_table("cpu-x86", "oneapi-pip", [("avx2", "native", b"\x7fELF"), ("spirv", "portable",
                                                                                               b"\x03\x02\x23\x07")])
    assert "static const unsigned char syclforge_img_avx2[4] = {127,69,76,70};" in text
    assert '{"spirv", "portable", syclforge_img_spirv, 4},' in text
    assert 'syclforge_build_toolchain[] = "oneapi-pip"' in text
    assert 'syclforge_build_device[] = "cpu"' in text
    text = embed.render_image_table("nvidia", "icpx", [("sm_90", "native", None), ("ptx", "portable", None)],
                                    device="gpu")
    assert "unsigned char" not in text and '{"sm_90", "native", nullptr, 0},' in text
    assert 'syclforge_build_device[] = "gpu"' in text   # the runtime then runs it on a GPU or not at all
    assert "syclforge_embedded_image_count = 2;" in text
    with pytest.raises(ValueError, match="odd name"):
        embed.render_image_table("t", "x; evil()", [])
    with pytest.raises(ValueError, match="empty"):
        embed.render_image_table("t", "x", [("avx2", "native", b"")])


def test_compile_commands_one_entry_per_file_and_output():
    entries = [("/p/b.cpp", ["g++", "-c", "/p/b.cpp", "-o", "/p/build/b.o"]),
               ("/p/a.cpp", ["clang++", "-fsycl", "-c", "/p/a.cpp", "-o", "/p/build/a.spv"]),
               ("/p/b.cpp", ["g++", "-c", "/p/b.cpp", "-o", "/p/build/b.o"])]
    rows = json.loads(registry.render(entries, "/p"))
    assert [(r["file"], r["output"]) for r in rows] == [("/p/a.cpp", "/p/build/a.spv"), ("/p/b.cpp", "/p/build/b.o")]
    assert all(r["directory"] == "/p" and r["arguments"][-1] == r["output"] for r in rows)
