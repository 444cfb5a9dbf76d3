/* Table-driven flag parsing shared by all subcommands, plus "name = value" config files. */
#include "ddialab/flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dl_parse_int64(const char *text, int64_t *out)
{
    if (text == NULL || *text == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

/* Splits "123unit" into a non-negative number and its unit; the unit is matched by the caller. */
static int split_number(const char *text, int64_t *number, const char **unit)
{
    if (text == NULL || !isdigit((unsigned char)*text))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || v > INT64_MAX)
        return -EINVAL;
    *number = (int64_t)v;
    *unit = end;
    return 0;
}

static int scale(int64_t number, int64_t factor, int64_t *out)
{
    if (number > INT64_MAX / factor)
        return -EINVAL;
    *out = number * factor;
    return 0;
}

int dl_parse_duration_ms(const char *text, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    int64_t number;
    const char *unit;
    if (split_number(text, &number, &unit) != 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i].unit) == 0)
            return scale(number, units[i].ms, out);
    return -EINVAL;
}

int dl_parse_bytes(const char *text, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t bytes;
    } units[] = {{"", 1},           {"b", 1},
                 {"k", 1024},       {"kib", 1024},
                 {"kb", 1024},      {"m", 1048576},
                 {"mib", 1048576},  {"mb", 1048576},
                 {"g", 1073741824}, {"gib", 1073741824},
                 {"gb", 1073741824}};
    int64_t number;
    const char *unit;
    if (split_number(text, &number, &unit) != 0)
        return -EINVAL;
    char lower[8];
    size_t n = strlen(unit);
    if (n >= sizeof(lower))
        return -EINVAL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)unit[i]);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(lower, units[i].unit) == 0)
            return scale(number, units[i].bytes, out);
    return -EINVAL;
}

static const dl_flag_t *find_flag(const dl_flag_t *flags, const char *name, size_t len)
{
    for (const dl_flag_t *f = flags; f->name != NULL; f++)
        if (strlen(f->name) == len && strncmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

static int parse_bool(const char *text, int *out)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0 || strcmp(text, "yes") == 0 ||
        strcmp(text, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0 || strcmp(text, "no") == 0 ||
        strcmp(text, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -EINVAL;
}

/* Stores value into the flag's target. value stays owned by the caller and must outlive it. */
static int set_value(const dl_flag_t *f, char *value, char *err, size_t errlen)
{
    int rv = 0;
    switch (f->type) {
    case DL_FLAG_BOOL:
        rv = parse_bool(value, (int *)f->target);
        break;
    case DL_FLAG_INT:
        rv = dl_parse_int64(value, (int64_t *)f->target);
        break;
    case DL_FLAG_STRING:
        *(char **)f->target = value;
        break;
    case DL_FLAG_DURATION:
        rv = dl_parse_duration_ms(value, (int64_t *)f->target);
        break;
    case DL_FLAG_BYTES:
        rv = dl_parse_bytes(value, (int64_t *)f->target);
        break;
    }
    if (rv != 0)
        snprintf(err, errlen, "invalid value '%s' for --%s", value, f->name);
    return rv;
}

int dl_flags_parse(const char *usage, const dl_flag_t *flags, int argc, char **argv, int first,
                   int *next, char *err, size_t errlen)
{
    int i = first;
    while (i < argc) {
        char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            break;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            dl_flags_print_help(usage, flags);
            return 1;
        }
        char *name = arg + 2;
        char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const dl_flag_t *f = find_flag(flags, name, name_len);
        if (f == NULL && eq == NULL && strncmp(name, "no-", 3) == 0) {
            const dl_flag_t *neg = find_flag(flags, name + 3, name_len - 3);
            if (neg != NULL && neg->type == DL_FLAG_BOOL) {
                *(int *)neg->target = 0;
                i++;
                continue;
            }
        }
        if (f == NULL) {
            snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)name_len, name);
            return -EINVAL;
        }
        char *value;
        if (eq != NULL) {
            value = eq + 1;
            i++;
        } else if (f->type == DL_FLAG_BOOL) {
            *(int *)f->target = 1;
            i++;
            continue;
        } else if (i + 1 < argc) {
            value = argv[i + 1];
            i += 2;
        } else {
            snprintf(err, errlen, "flag --%s needs a value", f->name);
            return -EINVAL;
        }
        int rv = set_value(f, value, err, errlen);
        if (rv != 0)
            return rv;
    }
    *next = i;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int dl_flags_load_file(const dl_flag_t *flags, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        int rv = -errno;
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(-rv));
        return rv;
    }
    char line[1024];
    int lineno = 0;
    int rv = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *text = trim(line);
        if (*text == '\0')
            continue;
        char *eq = strchr(text, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            rv = -EINVAL;
            break;
        }
        *eq = '\0';
        char *name = trim(text);
        char *value = trim(eq + 1);
        const dl_flag_t *f = find_flag(flags, name, strlen(name));
        if (f == NULL) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, name);
            rv = -EINVAL;
            break;
        }
        /* Config values must outlive the file buffer; they live as long as the process. */
        char *owned = strdup(value);
        if (owned == NULL) {
            rv = -ENOMEM;
            break;
        }
        rv = set_value(f, owned, err, errlen);
        if (rv != 0 || f->type != DL_FLAG_STRING)
            free(owned);
        if (rv != 0)
            break;
    }
    fclose(fp);
    return rv;
}

static void format_default(const dl_flag_t *f, char *buf, size_t len)
{
    switch (f->type) {
    case DL_FLAG_BOOL:
        snprintf(buf, len, "%s", *(int *)f->target ? "true" : "false");
        break;
    case DL_FLAG_INT:
        snprintf(buf, len, "%" PRId64, *(int64_t *)f->target);
        break;
    case DL_FLAG_STRING: {
        const char *s = *(char **)f->target;
        snprintf(buf, len, "%s", s ? s : "");
        break;
    }
    case DL_FLAG_DURATION:
        snprintf(buf, len, "%" PRId64 "ms", *(int64_t *)f->target);
        break;
    case DL_FLAG_BYTES:
        snprintf(buf, len, "%" PRId64, *(int64_t *)f->target);
        break;
    }
}

void dl_flags_print_help(const char *usage, const dl_flag_t *flags)
{
    printf("usage: %s\n\nflags:\n", usage);
    for (const dl_flag_t *f = flags; f->name != NULL; f++) {
        char def[256];
        format_default(f, def, sizeof(def));
        const char *meta = f->type == DL_FLAG_BOOL ? "" : " VALUE";
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", f->name, meta);
        printf("  %-26s %s", left, f->help);
        if (def[0] != '\0' && !(f->type == DL_FLAG_BOOL && strcmp(def, "false") == 0))
            printf(" (default %s)", def);
        printf("\n");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

/* Splits "HOST:PORT" into its parts (flags.h). */
int dl_parse_host_port(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return -EINVAL;
    const char *h = text;
    size_t len = (size_t)(colon - text);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535 || len >= hostlen)
        return -EINVAL;
    if (len > 0) {
        memcpy(host, h, len);
        host[len] = '\0';
    }
    *port = (int)p;
    return 0;
}

int dl_flags_run_verb(const char *lab, const dl_verb_t *verbs, size_t n, void (*usage)(FILE *out),
                      int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].main(argc - 1, argv + 1);
    fprintf(stderr, "ddialab %s: unknown verb '%s' (try: ddialab %s --help)\n", lab, argv[1], lab);
    return 2;
}
