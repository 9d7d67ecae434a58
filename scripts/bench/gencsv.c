/* Writes a CSV shaped like dataset/Income1.csv (an R-style quoted index column, then
 * "Education" and "Income" with about 15 significant digits), with Income close to
 * 5.6 * Education - 39.4 plus noise. Stops after ROWS rows, or, with ROWS = 0, once the file
 * reaches BYTES bytes. Prints the rows and bytes written as JSON.
 * Usage: gencsv OUT ROWS [BYTES] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gencsv OUT ROWS [BYTES]\n");
        return 2;
    }
    uint64_t rows = strtoull(argv[2], NULL, 10);
    uint64_t limit = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 1;
    }
    static char buffer[1 << 20];
    setvbuf(out, buffer, _IOFBF, sizeof buffer);
    uint64_t written = (uint64_t)fprintf(out, "\"\",\"Education\",\"Income\"\n");
    uint64_t state = 0x9E3779B97F4A7C15u, i = 0;
    for (;;) {
        if (rows && i >= rows) break;
        /* xorshift64: deterministic, fast */
        state ^= state << 13; state ^= state >> 7; state ^= state << 17;
        double u = (double)(state >> 11) * (1.0 / 9007199254740992.0);
        double education = 10.0 + 11.0 * (double)(i % 1000003) / 1000003.0;
        double income = 5.6 * education - 39.4 + (u - 0.5) * 12.0;
        char line[96];
        int len = snprintf(line, sizeof line, "\"%" PRIu64 "\",%.15g,%.15g\n", i + 1, education, income);
        if (limit && written + (uint64_t)len > limit) break;
        fwrite(line, 1, (size_t)len, out);
        written += (uint64_t)len;
        i++;
    }
    if (fclose(out) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("{\"rows\": %" PRIu64 ", \"bytes\": %" PRIu64 "}\n", i, written);
    return 0;
}
