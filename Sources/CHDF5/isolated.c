// FID statistics from files a stranger may have made, read in a forked child (docs/security.md#
// known-findings): on crafted files libhdf5 1.10 loops forever in its global heap or frees memory
// twice (found by make fuzz), so the parsing runs in a process whose crash or hang becomes an error
// here. The child touches libhdf5 and the pipe only, then _exit()s.
#include "chdf5.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int32_t status;  // 0 ok, -1 refused (message in error)
  int64_t count, dim;
  char extractor[256], resize[64], error[512];
} header_t;

static int write_all(int fd, const void *data, size_t size) {
  const char *p = data;
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

// Present only in sanitizer builds (make fuzz).
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

// A crash here must end this process and nothing else: under make fuzz, libFuzzer's handlers
// (inherited through fork) would report it as the fuzzer's own finding.
static void plain_death(void) {
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
  const int signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGALRM, SIGUSR1, SIGUSR2, SIGINT, SIGTERM, SIGXFSZ};
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; ++i) signal(signals[i], SIG_DFL);
}

static void child(const char *path, int fd) {
  plain_death();
  header_t h;
  memset(&h, 0, sizeof h);
  h.status = -1;
  double *mu = NULL, *sigma = NULL;
  ch5_id file = ch5_open(path, 0, h.error, sizeof h.error);
  if (file < 0) goto done;
  char count[64];
  if (ch5_get_string_attribute(file, "count", 0, count, sizeof count, h.error, sizeof h.error) < 0 ||
      ch5_get_string_attribute(file, "feature_extractor", 0, h.extractor, sizeof h.extractor, h.error, sizeof h.error) < 0 ||
      ch5_get_string_attribute(file, "resize", 0, h.resize, sizeof h.resize, h.error, sizeof h.error) < 0) {
    if (!h.error[0]) snprintf(h.error, sizeof h.error, "attribute 'count', 'feature_extractor' or 'resize' is missing");
    goto done;
  }
  char *end = NULL;
  h.count = strtoll(count, &end, 10);
  if (end == count || *end) { snprintf(h.error, sizeof h.error, "attribute 'count' is not a number"); goto done; }
  int64_t shape[16];
  int dtype = 0;
  if (ch5_dataset_info(file, "mu", shape, &dtype, h.error, sizeof h.error) != 1) {
    if (!h.error[0]) snprintf(h.error, sizeof h.error, "'mu' must be a vector");
    goto done;
  }
  h.dim = shape[0];
  if (h.dim < 1 || h.dim > 8192) { snprintf(h.error, sizeof h.error, "'mu' has %lld features", (long long)h.dim); goto done; }
  if (ch5_dataset_info(file, "sigma", shape, &dtype, h.error, sizeof h.error) != 2 || shape[0] != h.dim || shape[1] != h.dim) {
    snprintf(h.error, sizeof h.error, "'sigma' must be %lld × %lld", (long long)h.dim, (long long)h.dim);
    goto done;
  }
  mu = malloc(sizeof(double) * (size_t)h.dim);
  sigma = malloc(sizeof(double) * (size_t)(h.dim * h.dim));
  if (!mu || !sigma) { snprintf(h.error, sizeof h.error, "out of memory"); goto done; }
  if (ch5_read_rows(file, "mu", 7, 0, h.dim, mu, h.error, sizeof h.error) < 0 ||
      ch5_read_rows(file, "sigma", 7, 0, h.dim, sigma, h.error, sizeof h.error) < 0)
    goto done;
  h.status = 0;
done:
  write_all(fd, &h, sizeof h);
  if (h.status == 0) {
    write_all(fd, mu, sizeof(double) * (size_t)h.dim);
    write_all(fd, sigma, sizeof(double) * (size_t)(h.dim * h.dim));
  }
  _exit(0);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// Reads exactly `size` bytes before `deadline`; 0, or -1 on end of file, -2 on timeout.
static int read_all(int fd, void *data, size_t size, double deadline) {
  char *p = data;
  while (size > 0) {
    int remaining = (int)((deadline - now()) * 1000);
    if (remaining <= 0) return -2;
    struct pollfd poller = {fd, POLLIN, 0};
    int ready = poll(&poller, 1, remaining);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return -2;
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    size -= (size_t)n;
  }
  return 0;
}

int ch5_read_statistics_isolated(const char *path, double timeout_seconds, ch5_statistics *out, char *error,
                                 size_t error_size) {
  memset(out, 0, sizeof *out);
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(error, error_size, "cannot make a pipe: %s", strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(error, error_size, "cannot start the reader process: %s", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    close(fds[0]);
    child(path, fds[1]);
  }
  close(fds[1]);
  double deadline = now() + timeout_seconds;
  header_t h;
  int result = -1;
  int got = read_all(fds[0], &h, sizeof h, deadline);
  if (got == 0 && h.status != 0) {
    h.error[sizeof h.error - 1] = 0;
    snprintf(error, error_size, "%s", h.error);
  } else if (got == 0) {
    out->count = h.count;
    out->dim = h.dim;
    memcpy(out->extractor, h.extractor, sizeof out->extractor);
    memcpy(out->resize, h.resize, sizeof out->resize);
    out->extractor[sizeof out->extractor - 1] = 0;
    out->resize[sizeof out->resize - 1] = 0;
    out->mu = malloc(sizeof(double) * (size_t)h.dim);
    out->sigma = malloc(sizeof(double) * (size_t)(h.dim * h.dim));
    if (!out->mu || !out->sigma) {
      snprintf(error, error_size, "out of memory");
    } else {
      got = read_all(fds[0], out->mu, sizeof(double) * (size_t)h.dim, deadline);
      if (got == 0) got = read_all(fds[0], out->sigma, sizeof(double) * (size_t)(h.dim * h.dim), deadline);
      if (got == 0) result = 0;
    }
  }
  if (got == -2) kill(pid, SIGKILL);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (got == -2) {
    snprintf(error, error_size, "libhdf5 did not finish reading it within %.0f s: a malformed file", timeout_seconds);
  } else if (got == -1 && WIFSIGNALED(status)) {
    snprintf(error, error_size, "libhdf5 crashed reading it (signal %d): a malformed file", WTERMSIG(status));
  } else if (got == -1) {
    snprintf(error, error_size, "libhdf5 failed reading it (exit status %d): a malformed file", WEXITSTATUS(status));
  }
  if (result != 0) ch5_free_statistics(out);
  return result;
}

void ch5_free_statistics(ch5_statistics *s) {
  free(s->mu);
  free(s->sigma);
  s->mu = s->sigma = NULL;
}
