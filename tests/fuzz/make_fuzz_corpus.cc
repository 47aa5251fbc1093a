// make_fuzz_corpus DIR: writes the seeds of every fuzz target (tests/fuzz/seeds.h) to
// DIR/<target>/<name>. The committed corpus is its output:
//   build/tests/make_fuzz_corpus tests/fuzz/corpus
// fuzz_seeds_test fails when the committed files differ from what this writes.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/fuzz/seeds.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  for (const std::string& target : stablefs::FuzzTargets()) {
    const std::filesystem::path dir = std::filesystem::path(argv[1]) / target;
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : stablefs::SeedsFor(target)) {
      std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
        return 1;
      }
    }
  }
  return 0;
}
