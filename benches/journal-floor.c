/* The floor of reading a journal through libsystemd: what the sshd jail
 * asks of it (the stock journalmatch, every field of each matching entry,
 * its time, a cursor per 1,024 entries) and nothing else. scripts/
 * bench-server.sh journal builds it and runs it on the benchmark's journal:
 * no reader built on libsystemd can use less CPU than this.
 *
 *   cc -O2 -o journal-floor journal-floor.c -l:libsystemd.so.0
 *   journal-floor DIRECTORY
 *
 * The prototypes are those of sd-journal.h, so libsystemd-dev is not
 * needed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct sd_journal sd_journal;
int sd_journal_open_directory(sd_journal **ret, const char *path, int flags);
int sd_journal_add_match(sd_journal *j, const void *data, size_t size);
int sd_journal_add_disjunction(sd_journal *j);
int sd_journal_seek_head(sd_journal *j);
int sd_journal_next(sd_journal *j);
void sd_journal_restart_data(sd_journal *j);
int sd_journal_enumerate_data(sd_journal *j, const void **data, size_t *length);
int sd_journal_get_realtime_usec(sd_journal *j, uint64_t *ret);
int sd_journal_get_cursor(sd_journal *j, char **cursor);
void sd_journal_close(sd_journal *j);

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    sd_journal *j;
    const void *d;
    size_t l;
    uint64_t t, bytes = 0;
    long n = 0;
    char *c;
    double c0 = cpu_s();
    if (argc != 2 || sd_journal_open_directory(&j, argv[1], 0) < 0) {
        fprintf(stderr, "usage: journal-floor DIRECTORY (a journal directory)\n");
        return 2;
    }
    sd_journal_add_match(j, "_SYSTEMD_UNIT=sshd.service", 0);
    sd_journal_add_disjunction(j);
    sd_journal_add_match(j, "_COMM=sshd", 0);
    sd_journal_add_disjunction(j);
    sd_journal_seek_head(j);
    while (sd_journal_next(j) > 0) {
        sd_journal_restart_data(j);
        while (sd_journal_enumerate_data(j, &d, &l) > 0) bytes += l;
        sd_journal_get_realtime_usec(j, &t);
        if (++n % 1024 == 0 && sd_journal_get_cursor(j, &c) >= 0) free(c);
    }
    sd_journal_close(j);
    printf("libsystemd journal entries %ld bytes %llu cpu_s %.3f\n", n, (unsigned long long)bytes, cpu_s() - c0);
    return 0;
}
