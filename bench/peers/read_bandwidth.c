// Streaming read bandwidth of this machine: THREADS threads each sum their slice of a SIZE_MB buffer
// (uint64 adds, which the compiler vectorizes), PASSES times; prints the best and the median pass in
// GB/s (10^9 bytes read per second). The buffer is filled with non-zero data first and is far larger
// than any last-level cache, so every pass reads DRAM.
//
//   cc -O3 -march=native -pthread bench/peers/read_bandwidth.c -o read_bandwidth
//   ./read_bandwidth [THREADS=2] [SIZE_MB=2048] [PASSES=10] [PAGES=4k]
//
// PAGES: 4k (default: the buffer in whatever pages the kernel gives anonymous memory; with
// transparent huge pages in "madvise" mode, 4 KB ones) or 2m (the buffer 2 MB-aligned and marked
// MADV_HUGEPAGE first, so it is mapped by 2 MB pages where the kernel has them, as the cpu-fast
// backend asks for its weights; the line then says how much of it AnonHugePages grew by). The
// hardware prefetchers stop at 4 KB page boundaries and every 4 KB page costs a TLB entry, so the
// two can differ.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

typedef struct {
  const uint64_t* p;
  size_t n;
  uint64_t sum;
} Slice;

static void* sum_slice(void* arg) {
  Slice* s = (Slice*)arg;
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= s->n; i += 4) {
    a0 += s->p[i];
    a1 += s->p[i + 1];
    a2 += s->p[i + 2];
    a3 += s->p[i + 3];
  }
  for (; i < s->n; ++i) a0 += s->p[i];
  s->sum = a0 + a1 + a2 + a3;
  return NULL;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// AnonHugePages of /proc/meminfo in kB (-1 where it cannot be read).
static long anon_huge_kb(void) {
  FILE* f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
  }
  fclose(f);
  return kb;
}

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  const size_t size_mb = argc > 2 ? (size_t)atol(argv[2]) : 2048;
  const int passes = argc > 3 ? atoi(argv[3]) : 10;
  const char* pages = argc > 4 ? argv[4] : "4k";
  const int huge = strcmp(pages, "2m") == 0;
  if (threads < 1 || threads > 1024 || size_mb < 64 || passes < 1 || passes > 1000 ||
      (!huge && strcmp(pages, "4k") != 0)) {
    fprintf(stderr, "usage: %s [THREADS 1..1024] [SIZE_MB >= 64] [PASSES 1..1000] [PAGES 4k|2m]\n", argv[0]);
    return 2;
  }
  const size_t n = (size_mb << 20) / sizeof(uint64_t);
  uint64_t* buf = NULL;
  if (posix_memalign((void**)&buf, huge ? (size_t)2 << 20 : 4096, n * sizeof(uint64_t)) != 0) {
    fprintf(stderr, "cannot allocate %zu MB\n", size_mb);
    return 1;
  }
  const long huge0 = anon_huge_kb();
  if (huge) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (madvise(buf, n * sizeof(uint64_t), MADV_HUGEPAGE) != 0) perror("madvise(MADV_HUGEPAGE)");
#else
    fprintf(stderr, "no MADV_HUGEPAGE here: 2m is 4k\n");
#endif
  }
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull + 1;
  double* rates = calloc((size_t)passes, sizeof(double));
  Slice* s = calloc((size_t)threads, sizeof(Slice));
  pthread_t* tid = calloc((size_t)threads, sizeof(pthread_t));
  uint64_t check = 0;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_s();
    for (int t = 0; t < threads; ++t) {
      const size_t b = n * (size_t)t / (size_t)threads, e = n * (size_t)(t + 1) / (size_t)threads;
      s[t].p = buf + b;
      s[t].n = e - b;
      pthread_create(&tid[t], NULL, sum_slice, &s[t]);
    }
    for (int t = 0; t < threads; ++t) {
      pthread_join(tid[t], NULL);
      check += s[t].sum;
    }
    rates[p] = (double)(n * sizeof(uint64_t)) / (now_s() - t0) / 1e9;
  }
  qsort(rates, (size_t)passes, sizeof(double), cmp_double);
  char page_note[96] = "";
  if (huge) {
    const long grew = anon_huge_kb() - huge0;
    snprintf(page_note, sizeof page_note, ", 2m pages: %ld of %zu MB huge", grew / 1024, size_mb);
  }
  printf("read bandwidth: threads %d, %zu MB, %d passes: best %.2f GB/s, median %.2f GB/s (check %llx)%s\n",
         threads, size_mb, passes, rates[passes - 1], rates[passes / 2], (unsigned long long)(check & 0xff),
         page_note);
  free(tid);
  free(s);
  free(rates);
  free(buf);
  return 0;
}
