#include "cc/core/gpu_rtc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

// dlopen and friends of glibc 2.2.5, which every glibc still provides: a
// link against a newer glibc would otherwise take their 2.34 versions and
// raise the manylinux tag of the wheel to 2_34.
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".symver dladdr,dladdr@GLIBC_2.2.5");
#endif

namespace kappa {
namespace rtc {
namespace {

// The parts of the CUDA driver and NVRTC APIs used here, declared from their
// documented C interfaces (no CUDA headers are needed to build).
using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram*;
constexpr nvrtcResult NVRTC_SUCCESS = 0;

struct Driver {
  std::string error;  // empty when loaded
  int version = 0;
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDriverGetVersion)(int*) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext*) = nullptr;
  CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxPopCurrent)(CUcontext*) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice*) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void**, void**) = nullptr;
};

struct Nvrtc {
  std::string error;  // empty when loaded
  std::string path;
  int major = 0, minor = 0;
  std::vector<int> archs;  // the sm_XX it compiles for
  nvrtcResult (*nvrtcVersion)(int*, int*) = nullptr;
  nvrtcResult (*nvrtcGetNumSupportedArchs)(int*) = nullptr;
  nvrtcResult (*nvrtcGetSupportedArchs)(int*) = nullptr;
  const char* (*nvrtcGetErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram*, const char*, const char*, int,
                                    const char* const*, const char* const*) = nullptr;
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram*) = nullptr;
  nvrtcResult (*nvrtcAddNameExpression)(nvrtcProgram, const char*) = nullptr;
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*nvrtcGetLoweredName)(nvrtcProgram, const char*, const char**) = nullptr;
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram, char*) = nullptr;
};

template <typename F>
bool Bind(void* lib, const char* name, F* fn, std::string* missing) {
  *fn = reinterpret_cast<F>(dlsym(lib, name));
  if (*fn == nullptr) *missing += std::string(missing->empty() ? "" : ", ") + name;
  return *fn != nullptr;
}

const Driver& LoadDriver() {
  static const Driver* driver = [] {
    auto* d = new Driver;
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* why = dlerror();
      d->error = std::string("no NVIDIA driver (libcuda.so.1: ") + (why ? why : "not found") + ")";
      return d;
    }
    std::string missing;
    Bind(lib, "cuInit", &d->cuInit, &missing);
    Bind(lib, "cuDriverGetVersion", &d->cuDriverGetVersion, &missing);
    Bind(lib, "cuGetErrorString", &d->cuGetErrorString, &missing);
    Bind(lib, "cuStreamGetCtx", &d->cuStreamGetCtx, &missing);
    Bind(lib, "cuCtxPushCurrent_v2", &d->cuCtxPushCurrent, &missing);
    Bind(lib, "cuCtxPopCurrent_v2", &d->cuCtxPopCurrent, &missing);
    Bind(lib, "cuCtxGetDevice", &d->cuCtxGetDevice, &missing);
    Bind(lib, "cuDeviceGetAttribute", &d->cuDeviceGetAttribute, &missing);
    Bind(lib, "cuModuleLoadData", &d->cuModuleLoadData, &missing);
    Bind(lib, "cuModuleGetFunction", &d->cuModuleGetFunction, &missing);
    Bind(lib, "cuLaunchKernel", &d->cuLaunchKernel, &missing);
    if (!missing.empty()) {
      d->error = "libcuda.so.1 lacks " + missing;
    } else if (d->cuInit(0) != CUDA_SUCCESS || d->cuDriverGetVersion(&d->version) != CUDA_SUCCESS) {
      d->error = "the CUDA driver failed to initialise";
    }
    return d;
  }();
  return *driver;
}

// Where to look for NVRTC: KAPPA_NVRTC, the pip packages next to this
// library (site-packages/nvidia/...), then the loader's search path.
std::vector<std::string> NvrtcCandidates(int driver_version) {
  std::vector<std::string> out;
  if (const char* env = std::getenv("KAPPA_NVRTC")) {
    if (*env) return {env};
  }
  std::vector<std::string> names = {"libnvrtc.so.12"};
  // NVRTC 13 only where the driver runs CUDA 13 code.
  if (driver_version >= 13000) names.push_back("libnvrtc.so.13");
  Dl_info info;
  std::string site;
  if (dladdr(reinterpret_cast<void*>(&NvrtcCandidates), &info) && info.dli_fname) {
    std::string self = info.dli_fname;
    const size_t slash = self.rfind('/');
    if (slash != std::string::npos) site = self.substr(0, slash) + "/../nvidia/";
  }
  for (const std::string& name : names) {
    if (!site.empty()) {
      out.push_back(site + "cuda_nvrtc/lib/" + name);  // nvidia-cuda-nvrtc-cu12
      out.push_back(site + "cu13/lib/" + name);        // the CUDA 13 wheels' layout
    }
    out.push_back(name);
  }
  return out;
}

const Nvrtc& LoadNvrtc() {
  static const Nvrtc* nvrtc = [] {
    auto* n = new Nvrtc;
    void* lib = nullptr;
    std::string tried;
    for (const std::string& path : NvrtcCandidates(LoadDriver().version)) {
      lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) {
        n->path = path;
        break;
      }
      tried += (tried.empty() ? "" : ", ") + path;
    }
    if (lib == nullptr) {
      n->error = "NVRTC not found (tried " + tried +
                 "): install TensorFlow's CUDA packages (pip install "
                 "'tensorflow[and-cuda]', which brings nvidia-cuda-nvrtc-cu12) or set "
                 "KAPPA_NVRTC to a libnvrtc.so.12";
      return n;
    }
    std::string missing;
    Bind(lib, "nvrtcVersion", &n->nvrtcVersion, &missing);
    Bind(lib, "nvrtcGetNumSupportedArchs", &n->nvrtcGetNumSupportedArchs, &missing);
    Bind(lib, "nvrtcGetSupportedArchs", &n->nvrtcGetSupportedArchs, &missing);
    Bind(lib, "nvrtcGetErrorString", &n->nvrtcGetErrorString, &missing);
    Bind(lib, "nvrtcCreateProgram", &n->nvrtcCreateProgram, &missing);
    Bind(lib, "nvrtcDestroyProgram", &n->nvrtcDestroyProgram, &missing);
    Bind(lib, "nvrtcAddNameExpression", &n->nvrtcAddNameExpression, &missing);
    Bind(lib, "nvrtcCompileProgram", &n->nvrtcCompileProgram, &missing);
    Bind(lib, "nvrtcGetLoweredName", &n->nvrtcGetLoweredName, &missing);
    Bind(lib, "nvrtcGetProgramLogSize", &n->nvrtcGetProgramLogSize, &missing);
    Bind(lib, "nvrtcGetProgramLog", &n->nvrtcGetProgramLog, &missing);
    Bind(lib, "nvrtcGetCUBINSize", &n->nvrtcGetCUBINSize, &missing);
    Bind(lib, "nvrtcGetCUBIN", &n->nvrtcGetCUBIN, &missing);
    Bind(lib, "nvrtcGetPTXSize", &n->nvrtcGetPTXSize, &missing);
    Bind(lib, "nvrtcGetPTX", &n->nvrtcGetPTX, &missing);
    if (!missing.empty()) {
      n->error = n->path + " lacks " + missing;
      return n;
    }
    n->nvrtcVersion(&n->major, &n->minor);
    int count = 0;
    if (n->nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
      n->archs.resize(count);
      n->nvrtcGetSupportedArchs(n->archs.data());
    }
    return n;
  }();
  return *nvrtc;
}

// The embedded file at `path` (matched as a suffix: __FILE__ may carry a
// prefix), or nullptr.
const EmbeddedFile* FindFile(const char* path) {
  const size_t n = std::strlen(path);
  for (int k = 0; k < kFileCount; ++k) {
    const size_t m = std::strlen(kFiles[k].path);
    if (n >= m && std::strcmp(path + n - m, kFiles[k].path) == 0 &&
        (n == m || path[n - m - 1] == '/')) {
      return &kFiles[k];
    }
  }
  return nullptr;
}

struct Compiled {
  std::string lowered;  // the kernel's mangled name
  std::string image;    // cubin, or PTX text for the driver to JIT
};

// Compiles `kernel` of `file` for sm_<arch> (PTX of the newest architecture
// NVRTC knows where it does not know sm_<arch>).
bool Compile(const char* file, const std::string& kernel, int arch, Compiled* out,
             std::string* error) {
  const Nvrtc& nv = LoadNvrtc();
  if (!nv.error.empty()) {
    *error = nv.error;
    return false;
  }
  const EmbeddedFile* main = FindFile(file);
  if (main == nullptr) {
    *error = std::string("no embedded kernel source ") + file;
    return false;
  }
  static const char* const kStdNames[] = {"cmath", "cstdint", "cstring",
                                          "functional", "limits", "type_traits"};
  std::vector<const char*> names, texts;
  for (int k = 0; k < kFileCount; ++k) {
    names.push_back(kFiles[k].path);
    texts.push_back(kFiles[k].text);
  }
  for (const char* name : kStdNames) {
    names.push_back(name);
    texts.push_back("#include \"cc/core/rtc_std.h\"\n");
  }
  bool known = false;
  int newest = 0;
  for (int a : nv.archs) {
    known |= a == arch;
    if (a <= arch && a > newest) newest = a;
  }
  const bool cubin = known || nv.archs.empty();
  const std::string target = cubin ? "--gpu-architecture=sm_" + std::to_string(arch)
                                   : "--gpu-architecture=compute_" + std::to_string(newest);
  // --fmad=false: no a*b + c contracted into an FMA, as on the CPU
  // (-ffp-contract=off) and in the nvcc build. -default-device: the
  // headers' unannotated (host-only) functions parse as device functions,
  // which no kernel calls (rtc_std.h).
  const char* options[] = {"--std=c++17", target.c_str(), "--fmad=false", "-default-device"};
  nvrtcProgram prog = nullptr;
  nvrtcResult r = nv.nvrtcCreateProgram(&prog, main->text, main->path,
                                        static_cast<int>(names.size()), texts.data(),
                                        names.data());
  if (r != NVRTC_SUCCESS) {
    *error = std::string("nvrtcCreateProgram: ") + nv.nvrtcGetErrorString(r);
    return false;
  }
  std::unique_ptr<nvrtcProgram, void (*)(nvrtcProgram*)> guard(&prog, [](nvrtcProgram* p) {
    LoadNvrtc().nvrtcDestroyProgram(p);
  });
  nv.nvrtcAddNameExpression(prog, kernel.c_str());
  r = nv.nvrtcCompileProgram(prog, 4, options);
  if (r != NVRTC_SUCCESS) {
    size_t size = 0;
    nv.nvrtcGetProgramLogSize(prog, &size);
    std::string log(size, '\0');
    if (size) nv.nvrtcGetProgramLog(prog, &log[0]);
    *error = "NVRTC " + std::to_string(nv.major) + "." + std::to_string(nv.minor) + " (" +
             target + ") could not compile " + kernel + " of " + main->path + ": " +
             nv.nvrtcGetErrorString(r) + "\n" + log;
    return false;
  }
  const char* lowered = nullptr;
  if (nv.nvrtcGetLoweredName(prog, kernel.c_str(), &lowered) != NVRTC_SUCCESS || !lowered) {
    *error = "NVRTC found no kernel " + kernel + " in " + main->path;
    return false;
  }
  out->lowered = lowered;
  size_t size = 0;
  if (cubin) {
    nv.nvrtcGetCUBINSize(prog, &size);
    out->image.assign(size, '\0');
    nv.nvrtcGetCUBIN(prog, &out->image[0]);
  } else {
    nv.nvrtcGetPTXSize(prog, &size);
    out->image.assign(size, '\0');
    nv.nvrtcGetPTX(prog, &out->image[0]);
  }
  return true;
}

std::string DriverError(const char* what, CUresult r) {
  const char* text = nullptr;
  LoadDriver().cuGetErrorString(r, &text);
  return std::string(what) + ": " + (text ? text : "CUDA error " + std::to_string(r));
}

// The stream's context made current for the scope (the op's thread need not
// have one current).
class ContextScope {
 public:
  explicit ContextScope(CUstream stream) {
    const Driver& d = LoadDriver();
    CUresult r = d.cuStreamGetCtx(stream, &ctx_);
    if (r == CUDA_SUCCESS && ctx_ == nullptr) r = 201;  // CUDA_ERROR_INVALID_CONTEXT
    if (r != CUDA_SUCCESS) {
      error_ = DriverError("cuStreamGetCtx", r);
      return;
    }
    r = d.cuCtxPushCurrent(ctx_);
    if (r != CUDA_SUCCESS) {
      error_ = DriverError("cuCtxPushCurrent", r);
      return;
    }
    pushed_ = true;
  }
  ~ContextScope() {
    CUcontext popped = nullptr;
    if (pushed_) LoadDriver().cuCtxPopCurrent(&popped);
  }
  CUcontext context() const { return ctx_; }
  const std::string& error() const { return error_; }

 private:
  CUcontext ctx_ = nullptr;
  bool pushed_ = false;
  std::string error_;
};

struct Caches {
  std::mutex mu;
  std::map<std::pair<std::string, int>, Compiled> compiled;  // (file: kernel, arch)
  std::map<std::pair<CUcontext, std::string>, CUfunction> functions;
  std::map<CUcontext, std::pair<int, int>> devices;  // arch, multiprocessors
};

Caches& GetCaches() {
  static Caches* caches = new Caches;
  return *caches;
}

// The current context's device: (compute capability as 10 * major + minor,
// multiprocessor count). Caches' mutex held.
bool DeviceOf(CUcontext ctx, std::pair<int, int>* out, std::string* error) {
  Caches& c = GetCaches();
  auto it = c.devices.find(ctx);
  if (it == c.devices.end()) {
    const Driver& d = LoadDriver();
    CUdevice dev = 0;
    int major = 0, minor = 0, sms = 0;
    CUresult r = d.cuCtxGetDevice(&dev);
    if (r == CUDA_SUCCESS) {
      r = d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    }
    if (r == CUDA_SUCCESS) {
      r = d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    }
    if (r == CUDA_SUCCESS) {
      r = d.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    }
    if (r != CUDA_SUCCESS) {
      *error = DriverError("reading the device's attributes", r);
      return false;
    }
    it = c.devices.emplace(ctx, std::make_pair(10 * major + minor, sms)).first;
  }
  *out = it->second;
  return true;
}

thread_local CompileOnly* compile_only = nullptr;
thread_local std::string last_error;

const char* Fail(std::string message) {
  last_error = std::move(message);
  return last_error.c_str();
}

}  // namespace

CompileOnly::CompileOnly(int arch) : arch_(arch), outer_(compile_only) { compile_only = this; }
CompileOnly::~CompileOnly() { compile_only = outer_; }

const char* Launch(const char* file, const std::string& kernel, int grid, int block,
                   void* stream, const void* params) {
  std::string error;
  Caches& c = GetCaches();
  const std::string key = std::string(file) + ": " + kernel;
  if (compile_only != nullptr) {
    std::lock_guard<std::mutex> lock(c.mu);
    const auto id = std::make_pair(key, compile_only->arch_);
    if (!c.compiled.count(id)) {
      Compiled compiled;
      if (!Compile(file, kernel, compile_only->arch_, &compiled, &error)) return Fail(error);
      c.compiled.emplace(id, std::move(compiled));
    }
    compile_only->kernels_.push_back(key);
    return nullptr;
  }
  const Driver& d = LoadDriver();
  if (!d.error.empty()) return Fail(d.error);
  const CUstream s = static_cast<CUstream>(stream);
  ContextScope scope(s);
  if (!scope.error().empty()) return Fail(scope.error());
  CUfunction function = nullptr;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.functions.find({scope.context(), key});
    if (it != c.functions.end()) {
      function = it->second;
    } else {
      std::pair<int, int> device;
      if (!DeviceOf(scope.context(), &device, &error)) return Fail(error);
      const auto id = std::make_pair(key, device.first);
      auto compiled = c.compiled.find(id);
      if (compiled == c.compiled.end()) {
        Compiled fresh;
        if (!Compile(file, kernel, device.first, &fresh, &error)) return Fail(error);
        compiled = c.compiled.emplace(id, std::move(fresh)).first;
      }
      CUmodule module = nullptr;
      CUresult r = d.cuModuleLoadData(&module, compiled->second.image.data());
      if (r != CUDA_SUCCESS) return Fail(DriverError(("loading " + kernel).c_str(), r));
      r = d.cuModuleGetFunction(&function, module, compiled->second.lowered.c_str());
      if (r != CUDA_SUCCESS) return Fail(DriverError(("finding " + kernel).c_str(), r));
      c.functions.emplace(std::make_pair(scope.context(), key), function);
    }
  }
  void* args[] = {const_cast<void*>(params)};
  const CUresult r = d.cuLaunchKernel(function, static_cast<unsigned>(grid), 1, 1,
                                      static_cast<unsigned>(block), 1, 1, 0, s, args, nullptr);
  if (r != CUDA_SUCCESS) return Fail(DriverError(("launching " + kernel).c_str(), r));
  return nullptr;
}

int MultiprocessorCount(void* stream) {
  if (compile_only != nullptr || !LoadDriver().error.empty()) return 0;
  ContextScope scope(static_cast<CUstream>(stream));
  if (!scope.error().empty()) return 0;
  std::lock_guard<std::mutex> lock(GetCaches().mu);
  std::pair<int, int> device;
  std::string error;
  return DeviceOf(scope.context(), &device, &error) ? device.second : 0;
}

std::string StatusJson() {
  const auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      if (static_cast<unsigned char>(ch) < 0x20) {
        out += ' ';
        continue;
      }
      out += ch;
    }
    return out + "\"";
  };
  const Driver& d = LoadDriver();
  const Nvrtc& nv = LoadNvrtc();
  std::string json = "{\"driver\": ";
  json += d.error.empty() ? std::to_string(d.version) : "null";
  json += ", \"driver_error\": " + (d.error.empty() ? "null" : quote(d.error));
  json += ", \"nvrtc\": " + (nv.error.empty() ? quote(std::to_string(nv.major) + "." +
                                                       std::to_string(nv.minor))
                                              : "null");
  json += ", \"nvrtc_path\": " + (nv.error.empty() ? quote(nv.path) : "null");
  json += ", \"nvrtc_error\": " + (nv.error.empty() ? "null" : quote(nv.error)) + "}";
  return json;
}

}  // namespace rtc
}  // namespace kappa
