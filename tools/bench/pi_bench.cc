// Throughput of the protection-information guards and of Generate/Verify (storage/pi.h).
//
// Prints GB/s for each guard in each CRC implementation (portable tables, PCLMULQDQ, VPCLMULQDQ
// with AVX-512) and for
// XXH3, next to memcpy on the same buffers (512 B, 4 KiB, 64 KiB, 1 MiB) as the baseline, then
// Generate and Verify of a 1 MiB buffer under every profile. Asserts nothing. Run e.g.
//   pi_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "storage/pi.h"

namespace stablefs::pi {
namespace {

std::vector<unsigned char> RandomBuffer(size_t n) {
  std::mt19937_64 rng(n);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

void SetBytes(benchmark::State& state, size_t n) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}

void BM_Memcpy(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto src = RandomBuffer(n);
  std::vector<unsigned char> dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  SetBytes(state, n);
}

template <uint16_t (*kFn)(uint16_t, const void*, size_t), CrcImpl kImpl>
void BM_Crc16(benchmark::State& state) {
  if (!CpuCanRun(kImpl)) {
    state.SkipWithError("the CPU cannot run this implementation");
    return;
  }
  const size_t n = static_cast<size_t>(state.range(0));
  const auto buf = RandomBuffer(n);
  for (auto _ : state) benchmark::DoNotOptimize(kFn(0, buf.data(), n));
  SetBytes(state, n);
}

template <uint64_t (*kFn)(uint64_t, const void*, size_t), CrcImpl kImpl>
void BM_Crc64(benchmark::State& state) {
  if (!CpuCanRun(kImpl)) {
    state.SkipWithError("the CPU cannot run this implementation");
    return;
  }
  const size_t n = static_cast<size_t>(state.range(0));
  const auto buf = RandomBuffer(n);
  for (auto _ : state) benchmark::DoNotOptimize(kFn(0, buf.data(), n));
  SetBytes(state, n);
}

void BM_Xxh3(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const auto buf = RandomBuffer(n);
  for (auto _ : state) benchmark::DoNotOptimize(Xxh3(buf.data(), n));
  SetBytes(state, n);
}

#define PI_BENCH_SIZES Arg(512)->Arg(4096)->Arg(65536)->Arg(1 << 20)

BENCHMARK(BM_Memcpy)->PI_BENCH_SIZES;
BENCHMARK(BM_Crc16<Crc16T10DifPortable, CrcImpl::kPortable>)
    ->Name("BM_Crc16T10Dif/portable")
    ->PI_BENCH_SIZES;
BENCHMARK(BM_Crc16<Crc16T10DifClmul, CrcImpl::kClmul>)
    ->Name("BM_Crc16T10Dif/clmul")
    ->PI_BENCH_SIZES;
BENCHMARK(BM_Crc16<Crc16T10DifVpclmul, CrcImpl::kVpclmul>)
    ->Name("BM_Crc16T10Dif/vpclmul")
    ->PI_BENCH_SIZES;
BENCHMARK(BM_Crc64<Crc64NvmePortable, CrcImpl::kPortable>)
    ->Name("BM_Crc64Nvme/portable")
    ->PI_BENCH_SIZES;
BENCHMARK(BM_Crc64<Crc64NvmeClmul, CrcImpl::kClmul>)->Name("BM_Crc64Nvme/clmul")->PI_BENCH_SIZES;
BENCHMARK(BM_Crc64<Crc64NvmeVpclmul, CrcImpl::kVpclmul>)
    ->Name("BM_Crc64Nvme/vpclmul")
    ->PI_BENCH_SIZES;
BENCHMARK(BM_Xxh3)->PI_BENCH_SIZES;

// Generate and Verify of 1 MiB under one profile, through the dispatched (active) CRCs.
constexpr size_t kPiBufferSize = 1 << 20;

Profile ProfileFromArgs(const benchmark::State& state) {
  return Profile{static_cast<GuardKind>(state.range(0)), static_cast<Type>(state.range(1)),
                 static_cast<uint32_t>(state.range(2))};
}

void BM_Generate(benchmark::State& state) {
  const Profile p = ProfileFromArgs(state);
  state.SetLabel(p.ToString());
  const auto data = RandomBuffer(kPiBufferSize);
  std::vector<unsigned char> tuples(kPiBufferSize / p.interval * p.tuple_size());
  for (auto _ : state) {
    Generate(p, data.data(), data.size(), 1000, 0x1234, tuples.data());
    benchmark::DoNotOptimize(tuples.data());
    benchmark::ClobberMemory();
  }
  SetBytes(state, kPiBufferSize);
}

void BM_Verify(benchmark::State& state) {
  const Profile p = ProfileFromArgs(state);
  state.SetLabel(p.ToString());
  const auto data = RandomBuffer(kPiBufferSize);
  std::vector<unsigned char> tuples(kPiBufferSize / p.interval * p.tuple_size());
  Generate(p, data.data(), data.size(), 1000, 0x1234, tuples.data());
  for (auto _ : state) {
    Mismatch m;
    const bool ok = Verify(p, data.data(), data.size(), tuples.data(), 1000, 0x1234, &m);
    if (!ok) {
      state.SkipWithError("Verify failed on clean data");
      break;
    }
    benchmark::DoNotOptimize(ok);
  }
  SetBytes(state, kPiBufferSize);
}

void AllProfiles(benchmark::internal::Benchmark* b) {
  b->ArgNames({"guard", "type", "interval"});
  for (GuardKind g : {GuardKind::kCrc16T10Dif, GuardKind::kCrc64Nvme, GuardKind::kXxh3}) {
    for (Type t : {Type::kType1, Type::kType3}) {
      for (int64_t interval : {512, 4096}) {
        b->Args({static_cast<int64_t>(g), static_cast<int64_t>(t), interval});
      }
    }
  }
}

BENCHMARK(BM_Generate)->Apply(AllProfiles);
BENCHMARK(BM_Verify)->Apply(AllProfiles);

}  // namespace
}  // namespace stablefs::pi

BENCHMARK_MAIN();
