// The optional Open MPI binding (selfsup_mpi.node): collectives for data-parallel training.
// Every MPI call runs on one communication thread, in submission order, so a nonblocking allreduce launched
// during backward overlaps the JS thread's compute and all ranks still issue their collectives in the same order.
// Legend: n elements per rank, P ranks (world size).
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace {

// MPI counts are ints: larger buffers go in chunks of this many elements (configurable for tests).
int64_t gChunkElems = int64_t(1) << 26;

struct Job {
  std::function<void()> run;
  bool done = false;
  std::string error;
};

class CommThread {
 public:
  void start() {
    thread_ = std::thread([this] { loop(); });
  }
  // Queues fn; returns its job for wait().
  std::shared_ptr<Job> submit(std::function<void()> fn) {
    auto job = std::make_shared<Job>();
    job->run = std::move(fn);
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(job);
    }
    cv_.notify_all();
    return job;
  }
  void wait(const std::shared_ptr<Job>& job) {
    std::unique_lock<std::mutex> lk(mu_);
    doneCv_.wait(lk, [&] { return job->done; });
  }
  bool test(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lk(mu_);
    return job->done;
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool running() const { return thread_.joinable(); }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        job->run();
      } catch (const std::exception& e) {
        job->error = e.what();
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        job->done = true;
      }
      doneCv_.notify_all();
    }
  }
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_, doneCv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
};

CommThread gComm;
bool gInitialized = false;
bool gFinalized = false;
int gRank = 0, gSize = 1, gLocalRank = 0, gLocalSize = 1, gThreadLevel = 0;
std::string gProcessor;

// Nonblocking jobs by handle; the JS buffer is referenced until wait() so it cannot be collected mid-flight.
struct Pending {
  std::shared_ptr<Job> job;
  Napi::Reference<Napi::Value> buffer;
};
std::unordered_map<uint32_t, Pending> gPending;
uint32_t gNextHandle = 1;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string("[mpi] ") + what + " failed: " + std::string(msg, len));
}

void requireInit(const Napi::Env& env, const char* op) {
  if (!gInitialized || gFinalized) {
    throw Napi::Error::New(env, std::string("[mpi] ") + op + ": MPI is not initialised (call init() first)");
  }
}

// Runs fn on the comm thread and waits; a failure there becomes a JS exception here.
void runSync(const Napi::Env& env, std::function<void()> fn) {
  auto job = gComm.submit(std::move(fn));
  gComm.wait(job);
  if (!job->error.empty()) throw Napi::Error::New(env, job->error);
}

struct Elem {
  MPI_Datatype type;
  size_t bytes;
};

Elem elemOf(const Napi::Env& env, const Napi::TypedArray& a, const char* op) {
  switch (a.TypedArrayType()) {
    case napi_float32_array: return {MPI_FLOAT, 4};
    case napi_float64_array: return {MPI_DOUBLE, 8};
    case napi_int32_array: return {MPI_INT32_T, 4};
    default:
      throw Napi::TypeError::New(env, std::string("[mpi] ") + op + ": expected a Float32Array, Float64Array or Int32Array");
  }
}

// Argument i as a typed array: checked, with its data pointer and sizes (the JS buffer stays referenced by the caller).
struct Buf {
  Napi::TypedArray array;
  char* data;
  int64_t elems;
  int64_t bytes;
};

Buf typedArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* expected = "a typed array") {
  if (!info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string("[mpi] ") + op + ": expected " + expected);
  auto a = info[i].As<Napi::TypedArray>();
  return {a, static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset(), int64_t(a.ElementLength()), int64_t(a.ByteLength())};
}

MPI_Op opOf(const Napi::Env& env, const std::string& name) {
  if (name == "sum") return MPI_SUM;
  if (name == "max") return MPI_MAX;
  if (name == "min") return MPI_MIN;
  throw Napi::TypeError::New(env, "[mpi] allreduce: op must be 'sum', 'max' or 'min', got '" + name + "'");
}

// In-place allreduce of n elements at p, in chunks that fit an int count.
void allreduceChunked(void* p, int64_t n, Elem e, MPI_Op op) {
  char* base = static_cast<char*>(p);
  for (int64_t off = 0; off < n; off += gChunkElems) {
    const int64_t count = std::min(gChunkElems, n - off);
    check(MPI_Allreduce(MPI_IN_PLACE, base + off * e.bytes, int(count), e.type, op, MPI_COMM_WORLD), "MPI_Allreduce");
  }
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (gFinalized) throw Napi::Error::New(env, "[mpi] init: MPI was finalized; it cannot be initialised again in this process");
  if (gInitialized) return env.Undefined();
  // Node loads addons with RTLD_LOCAL; Open MPI's plugins need libmpi's symbols global.
  dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
  gComm.start();
  std::string err;
  auto job = gComm.submit([&] {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    gThreadLevel = provided;
    check(MPI_Comm_rank(MPI_COMM_WORLD, &gRank), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &gSize), "MPI_Comm_size");
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, gRank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    check(MPI_Comm_rank(node, &gLocalRank), "MPI_Comm_rank");
    check(MPI_Comm_size(node, &gLocalSize), "MPI_Comm_size");
    MPI_Comm_free(&node);
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    gProcessor.assign(name, len);
  });
  gComm.wait(job);
  if (!job->error.empty()) throw Napi::Error::New(env, job->error);
  gInitialized = true;
  return env.Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gInitialized || gFinalized) return env.Undefined();
  if (!gPending.empty()) throw Napi::Error::New(env, "[mpi] finalize: " + std::to_string(gPending.size()) + " nonblocking operation(s) were never waited for");
  runSync(env, [] { check(MPI_Finalize(), "MPI_Finalize"); });
  gFinalized = true;
  gComm.stop();
  return env.Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("initialized", gInitialized && !gFinalized);
  o.Set("rank", gRank);
  o.Set("size", gSize);
  o.Set("localRank", gLocalRank);
  o.Set("localSize", gLocalSize);
  o.Set("processor", gProcessor);
  o.Set("threadLevel", gThreadLevel);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  std::string v(version, len);
  o.Set("library", v.substr(0, v.find_first_of("\n,")));
  return o;
}

// allreduce(array, op = 'sum'): in place, blocking.
Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env, "allreduce");
  Buf a = typedArg(info, 0, "allreduce");
  Elem e = elemOf(env, a.array, "allreduce");
  MPI_Op op = opOf(env, info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum");
  char* p = a.data;
  int64_t n = a.elems;
  if (n == 0) return env.Undefined();
  runSync(env, [=] { allreduceChunked(p, n, e, op); });
  return env.Undefined();
}

// iallreduce(float32Array): starts an in-place sum on the comm thread, returns a handle for wait()/test().
Napi::Value Iallreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env, "iallreduce");
  Buf a = typedArg(info, 0, "iallreduce");
  Elem e = elemOf(env, a.array, "iallreduce");
  char* p = a.data;
  int64_t n = a.elems;
  auto job = gComm.submit([=] { if (n > 0) allreduceChunked(p, n, e, MPI_SUM); });
  uint32_t h = gNextHandle++;
  gPending.emplace(h, Pending{job, Napi::Persistent(info[0])});
  return Napi::Number::New(env, h);
}

// Argument 0 as the handle of a nonblocking job still pending.
std::unordered_map<uint32_t, Pending>::iterator pendingArg(const Napi::CallbackInfo& info, const char* op) {
  uint32_t h = info[0].As<Napi::Number>().Uint32Value();
  auto it = gPending.find(h);
  if (it == gPending.end()) throw Napi::Error::New(info.Env(), std::string("[mpi] ") + op + ": unknown or already completed handle " + std::to_string(h));
  return it;
}

Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto it = pendingArg(info, "wait");
  auto job = it->second.job;
  gComm.wait(job);
  gPending.erase(it);
  if (!job->error.empty()) throw Napi::Error::New(env, job->error);
  return env.Undefined();
}

Napi::Value Test(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto it = pendingArg(info, "test");
  return Napi::Boolean::New(env, gComm.test(it->second.job));
}

// allgather(send, recv): recv holds P * send.length elements of the same type, rank r's block at r * n.
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env, "allgather");
  Buf s = typedArg(info, 0, "allgather", "(send, recv) typed arrays");
  Buf r = typedArg(info, 1, "allgather", "(send, recv) typed arrays");
  if (s.array.TypedArrayType() != r.array.TypedArrayType()) throw Napi::TypeError::New(env, "[mpi] allgather: send and recv must have the same element type");
  Elem e = elemOf(env, s.array, "allgather");
  int64_t n = s.elems;
  if (r.elems != n * gSize) {
    throw Napi::RangeError::New(env, "[mpi] allgather: recv holds " + std::to_string(r.elems) + " elements, expected " +
                                         std::to_string(n) + " x " + std::to_string(gSize) + " ranks");
  }
  if (n > INT32_MAX) throw Napi::RangeError::New(env, "[mpi] allgather: more than 2^31 elements per rank");
  char* sp = s.data;
  char* rp = r.data;
  runSync(env, [=] { check(MPI_Allgather(sp, int(n), e.type, rp, int(n), e.type, MPI_COMM_WORLD), "MPI_Allgather"); });
  return env.Undefined();
}

// broadcast(array, root): in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env, "broadcast");
  Buf a = typedArg(info, 0, "broadcast");
  int root = info.Length() > 1 ? info[1].As<Napi::Number>().Int32Value() : 0;
  if (root < 0 || root >= gSize) throw Napi::RangeError::New(env, "[mpi] broadcast: root " + std::to_string(root) + " is not a rank of " + std::to_string(gSize));
  char* p = a.data;
  int64_t bytes = a.bytes;
  runSync(env, [=] {
    for (int64_t off = 0; off < bytes; off += gChunkElems * 4) {
      const int64_t count = std::min(gChunkElems * 4, bytes - off);
      check(MPI_Bcast(p + off, int(count), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  });
  return env.Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env, "barrier");
  runSync(env, [] { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); });
  return env.Undefined();
}

// abort(code): ends every rank of the job now. Called from the JS thread: the comm thread may be blocked in a
// collective that will never complete, which is exactly why we abort.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (gInitialized && !gFinalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

Napi::Value SetChunkElements(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t n = info[0].As<Napi::Number>().Int64Value();
  if (n < 1 || n > INT32_MAX) throw Napi::RangeError::New(env, "[mpi] setChunkElements: expected 1 .. 2^31-1, got " + std::to_string(n));
  gChunkElems = n;
  return env.Undefined();
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("allreduce", Napi::Function::New(env, Allreduce));
  exports.Set("iallreduce", Napi::Function::New(env, Iallreduce));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("test", Napi::Function::New(env, Test));
  exports.Set("allgather", Napi::Function::New(env, Allgather));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("setChunkElements", Napi::Function::New(env, SetChunkElements));
  return exports;
}

}  // namespace

NODE_API_MODULE(selfsup_mpi, InitModule)
