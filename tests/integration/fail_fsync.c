/* LD_PRELOAD shim for test_storage_faults.py: while the file named by
 * KPANEL_FAIL_FSYNC exists, fsync() and fdatasync() fail with EIO, as on a
 * disk that has started to fail. Test-only; never installed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
  const char* flag = getenv("KPANEL_FAIL_FSYNC");
  return flag != NULL && access(flag, F_OK) == 0;
}

static int call_real(const char* name, int fd) {
  int (*real)(int) = NULL;
  *(void**)(&real) = dlsym(RTLD_NEXT, name);
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd);
}

int fsync(int fd) {
  if (failing()) {
    errno = EIO;
    return -1;
  }
  return call_real("fsync", fd);
}

int fdatasync(int fd) {
  if (failing()) {
    errno = EIO;
    return -1;
  }
  return call_real("fdatasync", fd);
}
