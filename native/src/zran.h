// tocfs zran addon: shared declarations. Random access into plain gzip (DESIGN.md 3.3, 3.4): an indexer that
// records checkpoints while a layer inflates, and an extractor that resumes inflating at one of them.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace zran {

/** Deflate's largest back-reference distance: a checkpoint's window is the 32768 bytes before its `out`. */
constexpr size_t kWindowSize = 32768;

/** Largest compressed input one call takes (zlib counts avail_in in 32 bits). */
constexpr size_t kMaxInput = size_t{1} << 30;

/** Largest output one extraction returns: Node 20's buffer.constants.MAX_LENGTH. */
constexpr double kMaxLength = 4294967296.0;

Napi::Function DefineIndexer(Napi::Env env);
Napi::Value Extract(const Napi::CallbackInfo& info);

/** zlib's message for a return code, with its own text when it set one. */
std::string ZlibReason(int ret, const char* msg);

/** A non-negative integer number no larger than max, or false (argument checks). */
bool ToCount(const Napi::Value& value, double max, uint64_t* out);

/** Frees a malloc'd block handed to JS as a Buffer's memory. */
void FreeBlock(Napi::Env env, uint8_t* data);

}  // namespace zran
