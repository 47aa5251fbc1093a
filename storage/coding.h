// Fixed-width big-endian encoding, the byte order of every stablefs record and key.
//
// Big-endian keys sort in numeric order under RocksDB's bytewise comparator, so the blocks of a
// file are contiguous and in offset order, and a range of them is one DeleteRange. The PI tuple is
// big-endian too, as T10 defines it. Encoders append to a std::string (PutFixed*) or store into a
// buffer (EncodeFixed*); decoders read from a buffer (DecodeFixed*) or consume from the front of a
// std::string_view and report whether enough bytes were there (GetFixed*), in matching families as
// LevelDB's util/coding.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace stablefs {

inline void EncodeFixed16BE(char* dst, uint16_t v) {
  dst[0] = static_cast<char>(v >> 8);
  dst[1] = static_cast<char>(v);
}
inline void EncodeFixed32BE(char* dst, uint32_t v) {
  for (int i = 0; i < 4; i++) dst[i] = static_cast<char>(v >> (24 - 8 * i));
}
inline void EncodeFixed48BE(char* dst, uint64_t v) {
  for (int i = 0; i < 6; i++) dst[i] = static_cast<char>(v >> (40 - 8 * i));
}
inline void EncodeFixed64BE(char* dst, uint64_t v) {
  for (int i = 0; i < 8; i++) dst[i] = static_cast<char>(v >> (56 - 8 * i));
}

inline uint16_t DecodeFixed16BE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}
inline uint32_t DecodeFixed32BE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}
inline uint64_t DecodeFixed48BE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 6; i++) v = (v << 8) | u[i];
  return v;
}
inline uint64_t DecodeFixed64BE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | u[i];
  return v;
}

inline void PutFixed8(std::string* dst, uint8_t v) { dst->push_back(static_cast<char>(v)); }
inline void PutFixed16BE(std::string* dst, uint16_t v) {
  char buf[2];
  EncodeFixed16BE(buf, v);
  dst->append(buf, 2);
}
inline void PutFixed32BE(std::string* dst, uint32_t v) {
  char buf[4];
  EncodeFixed32BE(buf, v);
  dst->append(buf, 4);
}
inline void PutFixed64BE(std::string* dst, uint64_t v) {
  char buf[8];
  EncodeFixed64BE(buf, v);
  dst->append(buf, 8);
}
// A 16-bit length followed by the bytes. REQUIRES: s.size() <= 65535.
inline void PutLengthPrefixed16(std::string* dst, std::string_view s) {
  PutFixed16BE(dst, static_cast<uint16_t>(s.size()));
  dst->append(s.data(), s.size());
}

// Each Get* consumes from the front of *in and returns false, consuming nothing, when *in is
// too short.
inline bool GetFixed8(std::string_view* in, uint8_t* v) {
  if (in->size() < 1) return false;
  *v = static_cast<uint8_t>((*in)[0]);
  in->remove_prefix(1);
  return true;
}
inline bool GetFixed16BE(std::string_view* in, uint16_t* v) {
  if (in->size() < 2) return false;
  *v = DecodeFixed16BE(in->data());
  in->remove_prefix(2);
  return true;
}
inline bool GetFixed32BE(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = DecodeFixed32BE(in->data());
  in->remove_prefix(4);
  return true;
}
inline bool GetFixed64BE(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  *v = DecodeFixed64BE(in->data());
  in->remove_prefix(8);
  return true;
}
inline bool GetLengthPrefixed16(std::string_view* in, std::string_view* s) {
  std::string_view copy = *in;
  uint16_t len;
  if (!GetFixed16BE(&copy, &len) || copy.size() < len) return false;
  *s = copy.substr(0, len);
  copy.remove_prefix(len);
  *in = copy;
  return true;
}
inline bool GetBytes(std::string_view* in, size_t n, std::string_view* s) {
  if (in->size() < n) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace stablefs
