// Shared bits of the oneapi-pip build-time tools: file I/O that never leaves
// a half-written output (write to a temporary name, rename on success).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace sf {

[[noreturn]] inline void die(const std::string &tool, const std::string &msg) {
  std::fprintf(stderr, "%s: error: %s\n", tool.c_str(), msg.c_str());
  std::exit(1);
}

inline std::string read_file(const std::string &tool, const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die(tool, "cannot read " + path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void write_file_atomic(const std::string &tool, const std::string &path, const void *data, size_t n) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o.write(static_cast<const char *>(data), n)) die(tool, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) die(tool, "cannot rename " + tmp + " to " + path);
}

} // namespace sf
