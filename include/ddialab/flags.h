/*
 * Command-line flags shared by every subcommand.
 *
 * A subcommand declares a table of dl_flag_t ending with a zeroed entry; dl_flags_parse() fills
 * the targets from argv ("--name value", "--name=value", and "--name"/"--no-name" for booleans),
 * prints the usage and flag list for --help, and stops at the first positional argument. Values
 * already in the targets are the defaults and are shown in --help. A config file holds the same
 * flags as "name = value" lines ('#' starts a comment) and is read with dl_flags_load_file().
 */
#ifndef DDIALAB_FLAGS_H
#define DDIALAB_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DL_FLAG_BOOL,     /* target: int (0 or 1) */
    DL_FLAG_INT,      /* target: int64_t */
    DL_FLAG_STRING,   /* target: char * (points into argv or a strdup'd config value) */
    DL_FLAG_DURATION, /* target: int64_t milliseconds; accepts 250ms, 2s, 1m, or a bare ms count */
    DL_FLAG_BYTES,    /* target: int64_t bytes; accepts 4096, 4KiB, 1MiB, 1GiB, 4k, 1m, 1g */
} dl_flag_type_t;

typedef struct dl_flag_s {
    const char *name; /* without the leading dashes */
    dl_flag_type_t type;
    void *target;
    const char *help;
} dl_flag_t;

/*
 * Parses argv[first..argc). On success returns 0 and sets *next to the index of the first
 * positional argument (argc when there is none). Returns 1 when --help was given (the help has
 * been printed to stdout). On bad input returns -EINVAL with a one-line message in err.
 */
int dl_flags_parse(const char *usage, const dl_flag_t *flags, int argc, char **argv, int first,
                   int *next, char *err, size_t errlen);

/* Reads "name = value" lines from path into the flags. Returns 0 or -errno/-EINVAL with err. */
int dl_flags_load_file(const dl_flag_t *flags, const char *path, char *err, size_t errlen);

/* Parsers used by the flags and by HTTP query strings. Return 0 or -EINVAL. */
int dl_parse_int64(const char *text, int64_t *out);
int dl_parse_duration_ms(const char *text, int64_t *out);
int dl_parse_bytes(const char *text, int64_t *out);
/* "HOST:PORT" (an IPv6 host in brackets) into host (hostlen bytes; left as it was when the
 * text's host is empty, ":9092") and *port (0 .. 65535). 0 or -EINVAL. */
int dl_parse_host_port(const char *text, char *host, size_t hostlen, int *port);

/* Prints the usage line and the flag table (name, default, help) to stdout. */
void dl_flags_print_help(const char *usage, const dl_flag_t *flags);

/* A verb of a lab's command line ("ddialab <lab> <verb> ..."): its main gets argv from the verb. */
typedef struct dl_verb_s {
    const char *name;
    int (*main)(int argc, char **argv);
} dl_verb_t;

/*
 * Runs the verb argv[1] names (argv[0] is the lab, as in "events"): usage(stdout) and 0 for
 * --help, -h or help; usage(stderr) and 2 with no verb; a one-line error and 2 for an unknown
 * one. Otherwise what the verb's main returns.
 */
int dl_flags_run_verb(const char *lab, const dl_verb_t *verbs, size_t n, void (*usage)(FILE *out),
                      int argc, char **argv);

#endif
