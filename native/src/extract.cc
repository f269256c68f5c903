// extract(compressed, bits, window, skip, length): inflates from a zran checkpoint in an AsyncWorker.
// `compressed` starts at the checkpoint's `in - (bits ? 1 : 0)`: with bits != 0 its first byte is shared
// with the previous block, whose unused high `bits` bits are primed into a raw inflate (inflatePrime); the
// window is the dictionary. The rest is raw deflate up to the end of the checkpoint's member; a member
// boundary inside the span is its 8-byte trailer (skipped: the member's start is not in the span, so its
// CRC-32 cannot be checked), then whole gzip members, read in zlib's gzip mode (headers with FEXTRA,
// FNAME, FCOMMENT, FHCRC; trailers checked) each with an empty window.
//
// Result: exactly `length` bytes after skipping `skip`, or fewer only when the compressed bytes end first
// at a clean end: a deflate block boundary (the end of a span) or the end of a gzip member. Bytes that end
// inside a block, header or trailer, and invalid data, reject with an error. Nothing outside `compressed` is
// read, and inflating stops once `length` bytes are out.
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "zran.h"

namespace zran {
namespace {

constexpr size_t kScratch = size_t{64} << 10;
constexpr size_t kFirstAlloc = size_t{64} << 20;
constexpr uInt kTrailer = 8;

class ExtractWorker : public Napi::AsyncWorker {
 public:
  ExtractWorker(Napi::Env env, const uint8_t* data, size_t size, int bits, const uint8_t* window,
                uint64_t skip, uint64_t length)
      : Napi::AsyncWorker(env, "tocfs:zran:extract"),
        deferred_(Napi::Promise::Deferred::New(env)),
        input_(data, data + size),
        window_(window, window + kWindowSize),
        bits_(bits),
        skip_(skip),
        length_(length) {}

  ~ExtractWorker() override { std::free(out_); }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    z_stream s{};
    if (inflateInit2(&s, -15) != Z_OK) return SetError("zran extract: cannot start inflate (out of memory)");
    Run(s);
    inflateEnd(&s);
  }

  void OnOK() override {
    Napi::Env env = Env();
    uint8_t* data = out_;
    if (data != nullptr && have_ < cap_) {
      void* shrunk = std::realloc(data, have_ == 0 ? 1 : have_);
      if (shrunk != nullptr) data = static_cast<uint8_t*>(shrunk);
    }
    out_ = nullptr;
    if (data == nullptr) {
      deferred_.Resolve(Napi::Buffer<uint8_t>::New(env, 0));
      return;
    }
    deferred_.Resolve(Napi::Buffer<uint8_t>::NewOrCopy(env, data, have_, FreeBlock));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void Fail(z_stream& s, const std::string& what) {
    SetError("zran extract: " + what + " at compressed byte " + std::to_string(input_.size() - s.avail_in) +
             " of " + std::to_string(input_.size()));
  }

  /** Room for the next call: scratch while skipping, else the output (grown on demand). */
  bool Aim(z_stream& s, std::vector<uint8_t>& scratch) {
    if (skip_ > 0) {
      s.next_out = scratch.data();
      s.avail_out = static_cast<uInt>(std::min<uint64_t>(skip_, kScratch));
      return true;
    }
    if (have_ == cap_) {
      size_t cap = cap_ == 0 ? std::min<uint64_t>(length_, kFirstAlloc) : std::min<uint64_t>(length_, cap_ * 2);
      void* grown = std::realloc(out_, cap);
      if (grown == nullptr) return false;
      out_ = static_cast<uint8_t*>(grown);
      cap_ = cap;
    }
    s.next_out = out_ + have_;
    s.avail_out = static_cast<uInt>(std::min<size_t>(cap_ - have_, kMaxInput));
    return true;
  }

  void Run(z_stream& s) {
    const uint8_t* in = input_.data();
    size_t start = 0;
    if (bits_ != 0) {
      if (input_.empty()) return SetError("zran extract: bits != 0 but no compressed bytes (the byte at in - 1)");
      if (inflatePrime(&s, bits_, in[0] >> (8 - bits_)) != Z_OK) return SetError("zran extract: inflatePrime failed");
      start = 1;
    }
    if (inflateSetDictionary(&s, window_.data(), kWindowSize) != Z_OK)
      return SetError("zran extract: inflateSetDictionary failed");
    s.next_in = const_cast<Bytef*>(in + start);
    s.avail_in = static_cast<uInt>(input_.size() - start);
    std::vector<uint8_t> scratch(skip_ > 0 ? kScratch : 0);
    bool raw = true;  // still in the checkpoint's member, whose header is not in the span
    while (have_ < length_) {
      if (!Aim(s, scratch)) return SetError("zran extract: out of memory");
      const uInt before = s.avail_out;
      const int ret = inflate(&s, Z_BLOCK);
      const uInt produced = before - s.avail_out;
      if (skip_ > 0) skip_ -= produced;
      else have_ += produced;
      if (ret == Z_STREAM_END) {
        if (raw) {
          if (s.avail_in < kTrailer) return Fail(s, "the bytes end inside a gzip trailer");
          s.next_in += kTrailer;
          s.avail_in -= kTrailer;
          raw = false;
        }
        if (s.avail_in == 0) return;  // the end of the last member: the true end of the data
        // 15 + 16: the next member in gzip mode; inflateReset2 also empties the window.
        if (inflateReset2(&s, 15 + 16) != Z_OK) return Fail(s, "cannot restart inflate");
        continue;
      }
      if (ret != Z_OK && ret != Z_BUF_ERROR) return Fail(s, "bad deflate data (" + ZlibReason(ret, s.msg) + ")");
      if (s.avail_in == 0 && (s.data_type & 128)) return;  // the span's end, at a block boundary
      if (s.avail_in == 0 && s.avail_out != 0) {
        return Fail(s, raw ? "the bytes end inside a deflate block (truncated)"
                           : "the bytes end inside a gzip member (truncated)");
      }
    }
  }

  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> input_;   // copies: the caller's buffers may change or be detached meanwhile
  std::vector<uint8_t> window_;
  int bits_;
  uint64_t skip_;
  uint64_t length_;
  uint8_t* out_ = nullptr;
  size_t have_ = 0;
  size_t cap_ = 0;
};

bool IsBytes(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

}  // namespace

Napi::Value Extract(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t bits = 0, skip = 0, length = 0;
  const char* wrong = nullptr;
  if (!IsBytes(info[0])) wrong = "extract: compressed must be a Uint8Array";
  else if (info[0].As<Napi::Uint8Array>().ByteLength() > kMaxInput) wrong = "extract: compressed larger than 1 GiB";
  else if (!ToCount(info[1], 7, &bits)) wrong = "extract: bits must be an integer 0..7";
  else if (!IsBytes(info[2]) || info[2].As<Napi::Uint8Array>().ByteLength() != kWindowSize)
    wrong = "extract: window must be a Uint8Array of 32768 bytes";
  else if (!ToCount(info[3], 9007199254740991.0, &skip)) wrong = "extract: skip must be a non-negative integer";
  else if (!ToCount(info[4], kMaxLength, &length)) wrong = "extract: length must be an integer 0..2^32";
  if (wrong != nullptr) {
    Napi::RangeError::New(env, wrong).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array compressed = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array window = info[2].As<Napi::Uint8Array>();
  auto* worker = new ExtractWorker(env, compressed.Data(), compressed.ByteLength(), static_cast<int>(bits),
                                   window.Data(), skip, length);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace zran
