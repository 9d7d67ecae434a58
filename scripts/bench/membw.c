/* Sequential read bandwidth of one core: sums a large array of doubles with eight
 * independent accumulators (so the adds never limit the loop) and prints the best and the
 * median of several passes in GB/s (10^9 bytes per second).
 *
 * Then the floor under a shuffled epoch over 10M rows of one feature: the best time of a pass
 * that reads 10M 16-byte rows (160 MB) in a random order, and of a Fisher-Yates shuffle of 10M
 * 32-bit indices, both prefetching 32 accesses ahead on 2 MiB pages, as the training code does.
 * Usage: membw [MiB, default 1024] [passes, default 9] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define RANDOM_ROWS 10000000u
#define AHEAD 32

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t below(uint32_t n) { /* xorshift64*, then a multiply-shift into 0..n-1 */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)(((rng_state * 0x2545F4914F6CDD1Dull) >> 32) * n >> 32);
}

static void *huge_alloc(size_t bytes) {
    size_t rounded = (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    void *p = aligned_alloc(2u << 20, rounded);
    if (p) madvise(p, rounded, MADV_HUGEPAGE);
    return p;
}

/* Best milliseconds of `passes` random-order reads of the rows, and of shuffles of the order. */
static void random_floor(int passes, double *gather_ms, double *shuffle_ms, double *checksum) {
    double *rows = huge_alloc((size_t)RANDOM_ROWS * 2 * sizeof(double));
    uint32_t *order = huge_alloc((size_t)RANDOM_ROWS * sizeof(uint32_t));
    uint32_t *partners = malloc(AHEAD * sizeof(uint32_t));
    if (!rows || !order || !partners) { fprintf(stderr, "membw: cannot allocate the random rows\n"); exit(1); }
    for (uint32_t i = 0; i < RANDOM_ROWS; i++) { rows[2 * i] = i & 1023; rows[2 * i + 1] = 1.0; order[i] = i; }
    *gather_ms = *shuffle_ms = 1e300;
    for (int p = 0; p < passes; p++) {
        double t0 = seconds();
        for (uint32_t start = 1; start < RANDOM_ROWS; start += AHEAD) {
            uint32_t n = RANDOM_ROWS - start < AHEAD ? RANDOM_ROWS - start : AHEAD;
            for (uint32_t k = 0; k < n; k++) { partners[k] = below(start + k + 1); __builtin_prefetch(&order[partners[k]]); }
            for (uint32_t k = 0; k < n; k++) { uint32_t t = order[start + k]; order[start + k] = order[partners[k]]; order[partners[k]] = t; }
        }
        double t1 = seconds();
        double s = 0, e = 0;
        for (uint32_t i = 0; i < RANDOM_ROWS; i++) {
            if (i + AHEAD < RANDOM_ROWS) __builtin_prefetch(&rows[2 * (size_t)order[i + AHEAD]]);
            const double *row = &rows[2 * (size_t)order[i]];
            s += row[0];
            e += row[1];
        }
        double t2 = seconds();
        *checksum += s + e;
        if ((t1 - t0) * 1e3 < *shuffle_ms) *shuffle_ms = (t1 - t0) * 1e3;
        if ((t2 - t1) * 1e3 < *gather_ms) *gather_ms = (t2 - t1) * 1e3;
    }
    free(rows); free(order); free(partners);
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int passes = argc > 2 ? atoi(argv[2]) : 9;
    if (passes < 1 || passes > 100) passes = 9;
    size_t n = (mib << 20) / sizeof(double);
    n -= n % 8;
    double *a = aligned_alloc(64, n * sizeof(double));
    if (!a) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) a[i] = (double)(i & 1023) * 0.5;
    double rates[100], checksum = 0;
    for (int p = 0; p < passes; p++) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        double t0 = seconds();
        for (size_t i = 0; i < n; i += 8) {
            s0 += a[i];     s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
            s4 += a[i + 4]; s5 += a[i + 5]; s6 += a[i + 6]; s7 += a[i + 7];
        }
        double t1 = seconds();
        checksum += s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
        rates[p] = (double)(n * sizeof(double)) / (t1 - t0) / 1e9;
    }
    qsort(rates, (size_t)passes, sizeof(double), by_value);
    free(a);
    double gather_ms, shuffle_ms;
    random_floor(passes < 5 ? passes : 5, &gather_ms, &shuffle_ms, &checksum);
    printf("{\"mib\": %zu, \"passes\": %d, \"read_gbs_best\": %.3f, \"read_gbs_median\": %.3f, "
           "\"random_rows\": %u, \"random_gather_ms_best\": %.1f, \"random_shuffle_ms_best\": %.1f, \"checksum\": %.1f}\n",
           mib, passes, rates[passes - 1], rates[passes / 2], RANDOM_ROWS, gather_ms, shuffle_ms, checksum);
    return 0;
}
