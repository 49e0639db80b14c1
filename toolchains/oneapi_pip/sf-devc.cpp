// sf-devc: SYCL device source -> SPIR-V, at build time, through the oneAPI
// runtime compiler (sycl_ext_oneapi_kernel_compiler): the PyPI runtime has no
// offline device compiler, but its libsycl-jit is the DPC++ front end.
//
// usage: sf-devc -o OUT.spv [--include NAME=PATH]... [--option OPT]... SRC
#include <sycl/sycl.hpp>

#include <iostream>
#include <vector>

#include "common.hpp"

namespace syclexp = sycl::ext::oneapi::experimental;

int main(int argc, char **argv) {
  const std::string tool = "sf-devc";
  std::string out, src;
  std::vector<std::pair<std::string, std::string>> includes;
  // The wheel has no libsycl-*.bc device libraries: kernels use SYCL
  // built-ins (sycl::exp), never std:: math, and link no device libs.
  std::vector<std::string> options = {"-fno-sycl-device-lib=all"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) sf::die(tool, a + " needs a value");
      return argv[++i];
    };
    if (a == "-o") out = next();
    else if (a == "--include") {
      std::string v = next();
      size_t eq = v.find('=');
      if (eq == std::string::npos) sf::die(tool, "--include wants NAME=PATH, got " + v);
      includes.emplace_back(v.substr(0, eq), sf::read_file(tool, v.substr(eq + 1)));
    } else if (a == "--option") options.push_back(next());
    else if (!a.empty() && a[0] == '-') sf::die(tool, "unknown option " + a);
    else src = a;
  }
  if (out.empty() || src.empty()) sf::die(tool, "usage: sf-devc -o OUT.spv [--include NAME=PATH]... SRC");
  std::string source = sf::read_file(tool, src);
  try {
    sycl::queue q{sycl::cpu_selector_v};
    syclexp::include_files inc;
    for (auto &kv : includes) inc.add(kv.first, kv.second);
    auto kb = syclexp::create_kernel_bundle_from_source(q.get_context(), syclexp::source_language::sycl,
                                                        source, syclexp::properties{inc});
    std::string log;
    auto exe = syclexp::build(kb, syclexp::properties{syclexp::build_options{options}, syclexp::save_log{&log}});
    std::vector<std::byte> spirv;
    for (auto img : exe) {
      auto bytes = img.ext_oneapi_get_backend_content();
      if (!spirv.empty()) sf::die(tool, src + ": the runtime compiler produced more than one image");
      spirv = std::move(bytes);
    }
    if (spirv.size() < 4 || *reinterpret_cast<const uint32_t *>(spirv.data()) != 0x07230203u)
      sf::die(tool, src + ": the runtime compiler's output is not SPIR-V");
    sf::write_file_atomic(tool, out, spirv.data(), spirv.size());
  } catch (const sycl::exception &e) {
    // The compiler's diagnostics come inside the exception text.
    sf::die(tool, src + ": device compilation failed:\n" + e.what());
  }
  return 0;
}
