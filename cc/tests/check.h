// A minimal test harness for the TensorFlow-free C++ tests (no gtest).
//
//   KAPPA_TEST(Name) { KAPPA_CHECK(cond) << "context"; ... }
//   KAPPA_TEST_MAIN()
//
// A failed check prints its location, condition and context and marks the
// test failed; the test goes on (so one run reports every mismatch, capped
// per test). main returns 1 if any test failed.
#ifndef KAPPA_TESTS_CHECK_H_
#define KAPPA_TESTS_CHECK_H_

#include <cstdio>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace kappa_test {

struct Registry {
  std::vector<std::pair<std::string, std::function<void()>>> tests;
  int failures_in_test = 0;
  static Registry& Get() {
    static Registry r;
    return r;
  }
};

struct Register {
  Register(const char* name, std::function<void()> fn) {
    Registry::Get().tests.emplace_back(name, std::move(fn));
  }
};

// Collects the streamed context of a failed check and prints it when done.
class Failure {
 public:
  Failure(const char* file, int line, const char* cond) {
    Registry& r = Registry::Get();
    ++r.failures_in_test;
    print_ = r.failures_in_test <= 20;
    if (print_) stream_ << file << ":" << line << ": CHECK failed: " << cond << " ";
  }
  ~Failure() {
    if (print_) std::cerr << stream_.str() << std::endl;
  }
  template <typename V>
  Failure& operator<<(const V& v) {
    if (print_) stream_ << v;
    return *this;
  }

 private:
  bool print_;
  std::ostringstream stream_;
};

inline int RunAll() {
  Registry& r = Registry::Get();
  int failed = 0;
  for (auto& [name, fn] : r.tests) {
    r.failures_in_test = 0;
    fn();
    if (r.failures_in_test) {
      ++failed;
      std::cerr << "[FAILED] " << name << " (" << r.failures_in_test
                << " failed checks)" << std::endl;
    } else {
      std::cout << "[  OK  ] " << name << std::endl;
    }
  }
  std::cout << (r.tests.size() - failed) << "/" << r.tests.size()
            << " tests passed" << std::endl;
  return failed ? 1 : 0;
}

}  // namespace kappa_test

#define KAPPA_TEST(name)                                              \
  static void name();                                                 \
  static ::kappa_test::Register kappa_register_##name(#name, &name);  \
  static void name()

// `if (ok) {} else Failure(...)` so that `<< context` binds to the failure.
#define KAPPA_CHECK(cond) \
  if (cond) {             \
  } else                  \
    ::kappa_test::Failure(__FILE__, __LINE__, #cond)

#define KAPPA_TEST_MAIN() \
  int main() { return ::kappa_test::RunAll(); }

#endif  // KAPPA_TESTS_CHECK_H_
