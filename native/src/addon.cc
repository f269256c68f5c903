// Module entry: exports { ZranIndexer, extract, WINDOW_SIZE }. The TypeScript wrapper is
// src/layers/zran/zran.ts, which checks arguments again and gives every error its tocfs class.
#include <zlib.h>

#include <cmath>
#include <cstdlib>

#include "zran.h"

namespace zran {

std::string ZlibReason(int ret, const char* msg) {
  if (msg != nullptr) return msg;
  switch (ret) {
    case Z_DATA_ERROR: return "invalid deflate data";
    case Z_MEM_ERROR: return "out of memory";
    case Z_STREAM_ERROR: return "inconsistent inflate state";
    case Z_NEED_DICT: return "a preset dictionary is needed";
    case Z_BUF_ERROR: return "no progress possible";
    default: return "zlib error " + std::to_string(ret);
  }
}

bool ToCount(const Napi::Value& value, double max, uint64_t* out) {
  if (!value.IsNumber()) return false;
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || d > max || std::floor(d) != d) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

void FreeBlock(Napi::Env, uint8_t* data) { std::free(data); }

}  // namespace zran

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ZranIndexer", zran::DefineIndexer(env));
  exports.Set("extract", Napi::Function::New(env, zran::Extract, "extract"));
  exports.Set("WINDOW_SIZE", Napi::Number::New(env, static_cast<double>(zran::kWindowSize)));
  exports.Set("zlibVersion", Napi::String::New(env, zlibVersion()));
  return exports;
}

NODE_API_MODULE(tocfs_zran, Init)
