// ZranIndexer: inflates a gzip blob pushed chunk by chunk (a layer as it downloads) and records zran
// checkpoints on the way, as zlib's examples/zran.c does:
// - inflate with Z_BLOCK returns at every deflate block boundary; there `data_type & 128` is set and
//   `data_type & 7` is the count of unused bits in the last byte read;
// - a checkpoint is taken there, unless the block just ended was its member's last (`data_type & 64`), for
//   the first boundary (right after the first gzip header, out = 0) and then whenever out - lastOut > span;
// - its window is the 32768 uncompressed bytes before it (zero-padded at the start of the blob; across a
//   member boundary it holds the previous member's tail, which a valid member never refers to).
// Concatenated gzip members (most real layers, all eStargz blobs): zlib's gzip mode reads each header
// (FEXTRA, FNAME, FCOMMENT, FHCRC) and checks each trailer (CRC-32, ISIZE); after a member ends the next byte
// must start another member, and the totals go on across members.
// Each push runs in an AsyncWorker, off the JS thread; one push at a time.
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "zran.h"

namespace zran {
namespace {

constexpr size_t kBlockMin = size_t{64} << 10;
constexpr size_t kBlockMax = size_t{1} << 20;

struct Block {
  uint8_t* data;
  size_t used;
  size_t cap;
};

struct Checkpoint {
  uint64_t in;
  uint64_t out;
  int bits;
  uint8_t* window;
};

}  // namespace

class Indexer : public Napi::ObjectWrap<Indexer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ZranIndexer",
                       {InstanceMethod<&Indexer::Push>("push"), InstanceMethod<&Indexer::End>("end"),
                        InstanceAccessor<&Indexer::TotalIn>("totalIn"),
                        InstanceAccessor<&Indexer::TotalOut>("totalOut"),
                        InstanceAccessor<&Indexer::Members>("members"),
                        InstanceAccessor<&Indexer::Checkpoints>("checkpoints")});
  }

  explicit Indexer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Indexer>(info) {
    Napi::Env env = info.Env();
    if (!ToCount(info[0], 9007199254740991.0, &span_) || span_ == 0) {
      Napi::TypeError::New(env, "ZranIndexer: spanSize must be a positive integer").ThrowAsJavaScriptException();
      return;
    }
    // 15 + 16: a gzip wrapper only (not zlib, not raw), with the largest window.
    if (inflateInit2(&strm_, 15 + 16) != Z_OK) {
      Napi::Error::New(env, "ZranIndexer: cannot start inflate (out of memory)").ThrowAsJavaScriptException();
      return;
    }
    live_ = true;
    std::memset(tail_, 0, sizeof tail_);
  }

  ~Indexer() override {
    if (live_) inflateEnd(&strm_);
  }

 private:
  friend class PushWorker;

  Napi::Value Push(const Napi::CallbackInfo& info);

  Napi::Value End(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* refusal = busy_ ? "ZranIndexer: end() while a push is pending" : nullptr;
    if (refusal == nullptr && !error_.empty()) refusal = error_.c_str();
    if (refusal != nullptr) {
      Napi::Error::New(env, refusal).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!ended_) {
      std::string why;
      if (totalIn_ == 0) why = "ZranIndexer: no gzip data";
      else if (!betweenMembers_)
        why = "ZranIndexer: gzip stream truncated inside member " + std::to_string(members_) +
              " after compressed byte " + std::to_string(totalIn_);
      if (!why.empty()) {
        error_ = why;
        Napi::Error::New(env, why).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      ended_ = true;
      if (live_) inflateEnd(&strm_);
      live_ = false;
    }
    Napi::Object totals = Napi::Object::New(env);
    totals.Set("totalIn", TotalIn(info));
    totals.Set("totalOut", TotalOut(info));
    totals.Set("members", Members(info));
    totals.Set("checkpoints", Checkpoints(info));
    return totals;
  }

  Napi::Value TotalIn(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(shownIn_)); }
  Napi::Value TotalOut(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(shownOut_)); }
  Napi::Value Members(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(shownMembers_)); }
  Napi::Value Checkpoints(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(shownCount_)); }

  // State owned by the running PushWorker while busy_ (the JS thread reads only the shown* copies).
  z_stream strm_{};
  uint64_t span_ = 0;
  uint64_t totalIn_ = 0;
  uint64_t totalOut_ = 0;
  uint64_t lastOut_ = 0;
  uint64_t count_ = 0;
  uint64_t members_ = 1;
  bool betweenMembers_ = false;  // the last member ended: the next byte must start another
  uint8_t tail_[kWindowSize];    // the kWindowSize bytes before totalOut_, zero-padded

  // JS-thread state.
  bool live_ = false;
  bool busy_ = false;
  bool ended_ = false;
  std::string error_;  // sticky: a failed indexer stays failed
  uint64_t shownIn_ = 0, shownOut_ = 0, shownMembers_ = 1, shownCount_ = 0;
};

class PushWorker : public Napi::AsyncWorker {
 public:
  PushWorker(Napi::Env env, Indexer* indexer, Napi::Object self, const uint8_t* data, size_t length)
      : Napi::AsyncWorker(env, "tocfs:zran:index"),
        deferred_(Napi::Promise::Deferred::New(env)),
        ix_(indexer),
        self_(Napi::Persistent(self)),
        input_(data, data + length) {}

  ~PushWorker() override {
    for (Block& b : blocks_) std::free(b.data);
    for (Checkpoint& c : checkpoints_) std::free(c.window);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    z_stream& s = ix_->strm_;
    s.next_in = input_.data();
    s.avail_in = static_cast<uInt>(input_.size());
    for (;;) {
      if (ix_->betweenMembers_) {
        if (s.avail_in == 0) break;
        if (inflateReset(&s) != Z_OK) return SetError("ZranIndexer: cannot restart inflate");
        ix_->betweenMembers_ = false;
        ix_->members_++;
      }
      Block* b = Room();
      if (b == nullptr) return SetError("ZranIndexer: out of memory");
      s.next_out = b->data + b->used;
      s.avail_out = static_cast<uInt>(b->cap - b->used);
      const uInt inBefore = s.avail_in, outBefore = s.avail_out;
      const int ret = inflate(&s, Z_BLOCK);
      ix_->totalIn_ += inBefore - s.avail_in;
      ix_->totalOut_ += outBefore - s.avail_out;
      b->used += outBefore - s.avail_out;
      if (ret == Z_STREAM_END) {
        ix_->betweenMembers_ = true;
        continue;
      }
      if (ret == Z_BUF_ERROR) break;  // no progress: it needs the next chunk
      if (ret != Z_OK) {
        return SetError("ZranIndexer: bad gzip data in member " + std::to_string(ix_->members_) +
                        " near compressed byte " + std::to_string(ix_->totalIn_) + ": " +
                        ZlibReason(ret, s.msg));
      }
      if ((s.data_type & 128) && !(s.data_type & 64) &&
          (ix_->count_ == 0 || ix_->totalOut_ - ix_->lastOut_ > ix_->span_)) {
        uint8_t* window = static_cast<uint8_t*>(std::malloc(kWindowSize));
        if (window == nullptr) return SetError("ZranIndexer: out of memory");
        CopyWindow(window);
        checkpoints_.push_back({ix_->totalIn_, ix_->totalOut_, s.data_type & 7, window});
        ix_->count_++;
        ix_->lastOut_ = ix_->totalOut_;
      }
      if (s.avail_in == 0 && s.avail_out != 0) break;
    }
    CopyWindow(ix_->tail_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Finish();
    Napi::Array out = Napi::Array::New(env);
    for (Block& b : blocks_) {
      if (b.used == 0) continue;
      uint8_t* data = b.data;
      if (b.used < b.cap) {  // give back the unused tail of the last block
        void* shrunk = std::realloc(b.data, b.used);
        if (shrunk != nullptr) data = static_cast<uint8_t*>(shrunk);
      }
      b.data = nullptr;
      out.Set(out.Length(), Napi::Buffer<uint8_t>::NewOrCopy(env, data, b.used, FreeBlock));
    }
    Napi::Array points = Napi::Array::New(env, checkpoints_.size());
    for (size_t i = 0; i < checkpoints_.size(); i++) {
      Checkpoint& c = checkpoints_[i];
      Napi::Object point = Napi::Object::New(env);
      point.Set("in", Napi::Number::New(env, double(c.in)));
      point.Set("out", Napi::Number::New(env, double(c.out)));
      point.Set("bits", Napi::Number::New(env, c.bits));
      point.Set("window", Napi::Buffer<uint8_t>::NewOrCopy(env, c.window, kWindowSize, FreeBlock));
      c.window = nullptr;
      points.Set(i, point);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("out", out);
    result.Set("checkpoints", points);
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override {
    ix_->error_ = e.Message();
    Finish();
    deferred_.Reject(e.Value());
  }

 private:
  /** The block to inflate into next: the last one while it has room, else a new one. */
  Block* Room() {
    if (!blocks_.empty() && blocks_.back().used < blocks_.back().cap) return &blocks_.back();
    size_t cap = blocks_.empty() ? std::clamp(input_.size() * 4, kBlockMin, kBlockMax) : kBlockMax;
    uint8_t* data = static_cast<uint8_t*>(std::malloc(cap));
    if (data == nullptr) return nullptr;
    blocks_.push_back({data, 0, cap});
    return &blocks_.back();
  }

  /** The kWindowSize uncompressed bytes before the current output position, from this push's blocks and
   *  the tail the earlier pushes left. dst may be the tail itself: its kept part moves left first. */
  void CopyWindow(uint8_t* dst) {
    size_t fresh = 0;
    for (auto b = blocks_.rbegin(); b != blocks_.rend() && fresh < kWindowSize; ++b) fresh += b->used;
    fresh = std::min(fresh, kWindowSize);
    const size_t kept = kWindowSize - fresh;
    std::memmove(dst, ix_->tail_ + kWindowSize - kept, kept);
    uint8_t* end = dst + kWindowSize;
    size_t need = fresh;
    for (auto b = blocks_.rbegin(); b != blocks_.rend() && need > 0; ++b) {
      size_t n = std::min(need, b->used);
      std::memcpy(end - n, b->data + b->used - n, n);
      end -= n;
      need -= n;
    }
  }

  void Finish() {
    ix_->busy_ = false;
    ix_->shownIn_ = ix_->totalIn_;
    ix_->shownOut_ = ix_->totalOut_;
    ix_->shownMembers_ = ix_->members_;
    ix_->shownCount_ = ix_->count_;
  }

  Napi::Promise::Deferred deferred_;
  Indexer* ix_;
  Napi::ObjectReference self_;  // keeps the indexer (and its z_stream) alive while this runs
  std::vector<uint8_t> input_;  // a copy: the caller's buffer may change or be detached meanwhile
  std::vector<Block> blocks_;
  std::vector<Checkpoint> checkpoints_;
};

Napi::Value Indexer::Push(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, "ZranIndexer.push: chunk must be a Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array chunk = info[0].As<Napi::Uint8Array>();
  const char* refusal = nullptr;
  if (busy_) refusal = "ZranIndexer.push: another push is pending";
  else if (ended_) refusal = "ZranIndexer.push: the indexer has ended";
  else if (!error_.empty()) refusal = error_.c_str();
  else if (chunk.ByteLength() > kMaxInput) refusal = "ZranIndexer.push: chunk larger than 1 GiB";
  if (refusal != nullptr) {
    Napi::Error::New(env, refusal).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  busy_ = true;
  auto* worker = new PushWorker(env, this, info.This().As<Napi::Object>(), chunk.Data(), chunk.ByteLength());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Function DefineIndexer(Napi::Env env) { return Indexer::Define(env); }

}  // namespace zran
