// The glibc the NumPy binding (_kappa_core.so) needs: 2.17, whatever glibc
// builds it, so that a wheel built on a current distribution keeps the
// manylinux tag of the op library (older than TensorFlow's own).
//
// The binding links libstdc++ statically and hides it (build_deps/kappa.bzl,
// kappa_python_extension: the way manylinux toolchains ship the parts of the
// C++ runtime newer than the system's), so its symbol versions are glibc's
// alone. A build against glibc 2.34 or newer still binds a few of them at
// versions old systems lack; this file, linked into the binding only
// (hidden, so nothing outside the binding sees it), fixes those:
//
// * the POSIX thread functions that glibc 2.34 moved from libpthread into
//   libc (new default version GLIBC_2.34, same function) are called at their
//   first version, GLIBC_2.2.5, which every x86-64 glibc has (in libpthread
//   before 2.34, which the binding lists as needed);
// * __libc_single_threaded (glibc 2.32), read by libstdc++ to skip atomic
//   reference counts in single-threaded processes: defined here as 0 ("not
//   known to be single-threaded"), so libstdc++ always counts atomically;
// * getentropy (2.25) and arc4random (2.36), sources of std::random_device
//   that libstdc++'s archive references; the binding never draws from
//   std::random_device, but the references are resolved here, by the
//   getrandom system call (Linux 3.17) that glibc's own getentropy makes.
//
// tests/test_portable_build.py checks the linked binding's symbol versions
// against TensorFlow's own libraries, and scripts/release.sh checks the
// wheel's manylinux tag against TensorFlow's wheel.
#if defined(__x86_64__) && defined(__linux__)
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KAPPA_HIDDEN __attribute__((visibility("hidden")))
// `old_<name>` is <name> at glibc's first x86-64 version.
#define KAPPA_FIRST_VERSION(name) __asm__(".symver old_" #name "," #name "@GLIBC_2.2.5")

extern int old_pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
extern int old_pthread_join(pthread_t, void**);
extern int old_pthread_detach(pthread_t);
extern int old_pthread_once(pthread_once_t*, void (*)(void));
extern int old___pthread_key_create(pthread_key_t*, void (*)(void*));
KAPPA_FIRST_VERSION(pthread_create);
KAPPA_FIRST_VERSION(pthread_join);
KAPPA_FIRST_VERSION(pthread_detach);
KAPPA_FIRST_VERSION(pthread_once);
KAPPA_FIRST_VERSION(__pthread_key_create);

KAPPA_HIDDEN int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                void* (*start)(void*), void* arg) {
  return old_pthread_create(thread, attr, start, arg);
}
KAPPA_HIDDEN int pthread_join(pthread_t thread, void** result) {
  return old_pthread_join(thread, result);
}
KAPPA_HIDDEN int pthread_detach(pthread_t thread) { return old_pthread_detach(thread); }
KAPPA_HIDDEN int pthread_once(pthread_once_t* once, void (*init)(void)) {
  return old_pthread_once(once, init);
}
KAPPA_HIDDEN int __pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) {
  return old___pthread_key_create(key, destructor);
}

KAPPA_HIDDEN char __libc_single_threaded = 0;

KAPPA_HIDDEN int getentropy(void* buffer, size_t length) {
  if (length > 256) {
    errno = EIO;
    return -1;
  }
  unsigned char* p = (unsigned char*)buffer;
  while (length > 0) {
    const long n = syscall(SYS_getrandom, p, length, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    length -= (size_t)n;
  }
  return 0;
}

KAPPA_HIDDEN uint32_t arc4random(void) {
  uint32_t value;
  if (getentropy(&value, sizeof(value)) != 0) abort();  // as glibc's: it cannot fail
  return value;
}
#endif
