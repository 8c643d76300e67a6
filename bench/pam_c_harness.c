/* kpanel_bench_pam: the in-process PAM cost (c), from a C program, as sshd's
 * per-connection child is. A C++ harness had libstdc++ mapped before the
 * first pam_start, which hid what loading pam_kpanel_totp.so (C++ inside)
 * costs a process that does not have it: sshd re-executes itself for each
 * connection and loads the module on that connection's pam_start.
 *
 * So every sample runs in a child forked for it (the parent never loads a
 * PAM module), timed in the child, and the child checks, before its clock
 * starts, that libstdc++ is not mapped yet. The service file comes from
 * CONFDIR through Linux-PAM's own pam_start_confdir, not pam_wrapper, which
 * makes a fresh copy of the service directory on the first pam_start of every
 * process (a few hundred µs of file system work, most of what a forked login
 * measured under it).
 *
 *   kpanel_bench_pam login CONFDIR SERVICE USERS_FILE
 *     pam_start_confdir + pam_authenticate + pam_end once per user,
 *     answering the prompt with the user's current TOTP code (SHA1, 6
 *     digits, 30 s, computed with libcrypto's HMAC before the clock starts).
 *     USERS_FILE: one "user hex_secret" per line.
 *   kpanel_bench_pam load MODULE SAMPLES
 *     dlopen(MODULE, RTLD_NOW) + dlclose, as Linux-PAM loads a module for a
 *     handle and unloads it in pam_end.
 *
 * Prints one line: NAME SAMPLES SUCCEEDED MEAN_US P50_US P99_US PRELOADED
 * (PRELOADED: samples whose process had libstdc++ mapped before the clock
 * started; the suite discards figures unless it is 0). Exit 2 on bad usage,
 * 1 when the harness itself failed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <security/pam_appl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kMaxName = 64, kMaxSecret = 64, kCodeDigits = 6, kPeriod = 30 };

/* What a child reports to its parent through a pipe. */
struct Sample {
  double micros;
  int succeeded;
  int preloaded;
};

static double now_micros(void) {
  struct timespec t;
  (void)clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int libstdcxx_mapped(void) {
  void* handle = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == NULL) return 0;
  (void)dlclose(handle);
  return 1;
}

/* RFC 6238 with SHA1 and 6 digits; 0 on success. */
static int totp_code(const unsigned char* secret, size_t secret_size, char code[kCodeDigits + 1]) {
  uint64_t step = (uint64_t)time(NULL) / kPeriod;
  unsigned char counter[8];
  for (int i = 7; i >= 0; --i) {
    counter[i] = (unsigned char)(step & 0xffu);
    step >>= 8;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha1(), secret, (int)secret_size, counter, sizeof counter, mac, &mac_size) == NULL ||
      mac_size < 20) {
    return -1;
  }
  const unsigned offset = mac[mac_size - 1] & 0x0fu;
  const uint32_t binary = ((uint32_t)(mac[offset] & 0x7fu) << 24) |
                          ((uint32_t)mac[offset + 1] << 16) | ((uint32_t)mac[offset + 2] << 8) |
                          (uint32_t)mac[offset + 3];
  (void)snprintf(code, kCodeDigits + 1, "%06u", (unsigned)(binary % 1000000u));
  OPENSSL_cleanse(mac, sizeof mac);
  return 0;
}

static int from_hex(const char* hex, unsigned char* out, size_t capacity, size_t* size) {
  const size_t length = strlen(hex);
  if (length % 2 != 0 || length / 2 > capacity) return -1;
  for (size_t i = 0; i < length / 2; ++i) {
    unsigned value = 0;
    if (sscanf(hex + 2 * i, "%2x", &value) != 1) return -1;
    out[i] = (unsigned char)value;
  }
  *size = length / 2;
  return 0;
}

/* Answers every prompt with the code; messages need no answer. */
static int answer_with_code(int count, const struct pam_message** messages,
                            struct pam_response** responses, void* code) {
  struct pam_response* replies = calloc((size_t)count, sizeof *replies);
  if (replies == NULL) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    const int style = messages[i]->msg_style;
    if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON) {
      replies[i].resp = strdup(code);
    }
  }
  *responses = replies;
  return PAM_SUCCESS;
}

/* What a login needs besides the user: where the service file is. */
struct Service {
  const char* confdir;
  const char* name;
};

static struct Sample one_login(const struct Service* service, const char* user, char* code) {
  struct Sample sample = {.preloaded = libstdcxx_mapped()};
  const struct pam_conv conversation = {answer_with_code, code};
  const double start = now_micros();
  pam_handle_t* pamh = NULL;
  int rc = pam_start_confdir(service->name, user, &conversation, service->confdir, &pamh);
  if (rc == PAM_SUCCESS) rc = pam_authenticate(pamh, PAM_SILENT);
  (void)pam_end(pamh, rc);
  sample.micros = now_micros() - start;
  sample.succeeded = rc == PAM_SUCCESS;
  return sample;
}

static struct Sample one_load(const char* module) {
  struct Sample sample = {.preloaded = libstdcxx_mapped()};
  const double start = now_micros();
  void* handle = dlopen(module, RTLD_NOW);
  if (handle != NULL) sample.succeeded = dlclose(handle) == 0;
  sample.micros = now_micros() - start;
  return sample;
}

/* Runs one sample in a child forked for it: a login when `service` is set,
 * else a load of `module`; 0 on success. */
static int in_child(const struct Service* service, const char* user, char* code, const char* module,
                    struct Sample* out) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) {
    (void)close(pipe_fds[0]);
    (void)close(pipe_fds[1]);
    return -1;
  }
  if (pid == 0) {
    (void)close(pipe_fds[0]);
    const struct Sample sample =
        service != NULL ? one_login(service, user, code) : one_load(module);
    const ssize_t written = write(pipe_fds[1], &sample, sizeof sample);
    _exit(written == (ssize_t)sizeof sample ? 0 : 1);
  }
  (void)close(pipe_fds[1]);
  ssize_t got;
  do {
    got = read(pipe_fds[0], out, sizeof *out);
  } while (got < 0 && errno == EINTR);
  (void)close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return got == (ssize_t)sizeof *out && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a;
  const double y = *(const double*)b;
  return (x > y) - (x < y);
}

static double percentile(const double* sorted, size_t count, double fraction) {
  if (count == 0) return 0;
  return sorted[(size_t)(fraction * (double)(count - 1))];
}

struct Totals {
  double* micros;
  size_t count;
  size_t capacity;
  size_t succeeded;
  size_t preloaded;
};

static int add(struct Totals* totals, const struct Sample* sample) {
  if (totals->count == totals->capacity) {
    const size_t capacity = totals->capacity == 0 ? 256 : 2 * totals->capacity;
    double* grown = realloc(totals->micros, capacity * sizeof *grown);
    if (grown == NULL) return -1;
    totals->micros = grown;
    totals->capacity = capacity;
  }
  totals->micros[totals->count++] = sample->micros;
  totals->succeeded += sample->succeeded != 0;
  totals->preloaded += sample->preloaded != 0;
  return 0;
}

static void print(const char* name, struct Totals* totals) {
  double sum = 0;
  for (size_t i = 0; i < totals->count; ++i) sum += totals->micros[i];
  qsort(totals->micros, totals->count, sizeof *totals->micros, by_value);
  const double mean = totals->count == 0 ? 0 : sum / (double)totals->count;
  (void)printf("%s %zu %zu %.1f %.1f %.1f %zu\n", name, totals->count, totals->succeeded, mean,
               percentile(totals->micros, totals->count, 0.5),
               percentile(totals->micros, totals->count, 0.99), totals->preloaded);
}

static int logins(const struct Service* service, const char* users_file, struct Totals* totals) {
  FILE* in = fopen(users_file, "r");
  if (in == NULL) return -1;
  char user[kMaxName];
  char hex[2 * kMaxSecret + 1];
  int result = 0;
  while (result == 0 && fscanf(in, "%63s %128s", user, hex) == 2) {
    unsigned char secret[kMaxSecret];
    size_t secret_size = 0;
    char code[kCodeDigits + 1];
    struct Sample sample;
    /* The code is computed outside the timed part: the user types it. */
    result = from_hex(hex, secret, sizeof secret, &secret_size) == 0 &&
                     totp_code(secret, secret_size, code) == 0 &&
                     in_child(service, user, code, NULL, &sample) == 0 && add(totals, &sample) == 0
                 ? 0
                 : -1;
    OPENSSL_cleanse(secret, sizeof secret);
  }
  (void)fclose(in);
  return result;
}

static int loads(const char* module, long samples, struct Totals* totals) {
  for (long i = 0; i < samples; ++i) {
    struct Sample sample;
    if (in_child(NULL, NULL, NULL, module, &sample) != 0 || add(totals, &sample) != 0) return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  struct Totals totals = {0};
  int result = -1;
  const char* name = argv[argc > 2 ? 2 : 0];
  if (argc == 5 && strcmp(argv[1], "login") == 0) {
    const struct Service service = {.confdir = argv[2], .name = argv[3]};
    name = argv[3];
    result = logins(&service, argv[4], &totals);
  } else if (argc == 4 && strcmp(argv[1], "load") == 0) {
    char* end = NULL;
    const long samples = strtol(argv[3], &end, 10);
    if (*argv[3] != '\0' && *end == '\0' && samples > 0) result = loads(argv[2], samples, &totals);
  } else {
    (void)fprintf(stderr,
                  "usage: kpanel_bench_pam login CONFDIR SERVICE USERS_FILE\n"
                  "       kpanel_bench_pam load MODULE SAMPLES\n");
    return 2;
  }
  if (result != 0) {
    (void)fprintf(stderr, "kpanel_bench_pam: %s %s failed\n", argv[1], name);
    free(totals.micros);
    return 1;
  }
  print(name, &totals);
  free(totals.micros);
  return 0;
}
