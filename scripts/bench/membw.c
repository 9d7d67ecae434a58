/* Sequential read bandwidth of one core: sums a large array of doubles with eight
 * independent accumulators (so the adds never limit the loop) and prints the best and the
 * median of several passes in GB/s (10^9 bytes per second).
 * Usage: membw [MiB, default 1024] [passes, default 9] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
    printf("{\"mib\": %zu, \"passes\": %d, \"read_gbs_best\": %.3f, \"read_gbs_median\": %.3f, \"checksum\": %.1f}\n",
           mib, passes, rates[passes - 1], rates[passes / 2], checksum);
    free(a);
    return 0;
}
