/*
 * The metrics registry and its Prometheus text rendering.
 *
 * Families are kept in a list in registration order; each holds its series in a list, also in
 * registration order. Look-ups are linear: registration happens at start-up and a process has a
 * few dozen families, so a hash table would buy nothing. Each series is one allocation that also
 * holds its label text and, for histograms, its bounds and bucket counts.
 */
#include "ddialab/metrics.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum {
    TYPE_COUNTER,
    TYPE_GAUGE,
    TYPE_HISTOGRAM,
} metric_type_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

typedef struct family_s {
    struct family_s *next;
    metric_type_t type;
    char *name; /* points into this allocation */
    char *help; /* likewise */
    dl_metric_t *first;
    dl_metric_t *last;
} family_t;

struct dl_metric_s {
    dl_metric_t *next; /* in the family */
    family_t *family;
    const char *labels; /* "" when none; points into this allocation */
    double value;       /* counters and gauges */
    double (*fn)(void *ctx);
    void *ctx;
    /* Histograms: counts[i] observations fell in (bounds[i-1], bounds[i]]; counts[nbounds] holds
     * those above the last bound. Rendering makes them cumulative. */
    size_t nbounds;
    double *bounds;
    uint64_t *counts;
    double sum;
};

struct dl_metrics_s {
    family_t *first;
    family_t *last;
};

const double dl_metrics_latency_seconds_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t dl_metrics_latency_seconds_nbuckets =
    sizeof(dl_metrics_latency_seconds_buckets) / sizeof(dl_metrics_latency_seconds_buckets[0]);

dl_metrics_t *dl_metrics_new(void)
{
    return calloc(1, sizeof(dl_metrics_t));
}

void dl_metrics_free(dl_metrics_t *m)
{
    if (m == NULL)
        return;
    family_t *f = m->first;
    while (f != NULL) {
        dl_metric_t *s = f->first;
        while (s != NULL) {
            dl_metric_t *next = s->next;
            free(s);
            s = next;
        }
        family_t *next = f->next;
        free(f);
        f = next;
    }
    free(m);
}

/* --- Validation of our own callers' arguments (used in assertions only). --- */

#ifndef NDEBUG
static int is_name_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int is_name_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static int valid_metric_name(const char *name)
{
    if (!is_name_start((unsigned char)name[0]))
        return 0;
    for (const char *p = name + 1; *p != '\0'; p++)
        if (!is_name_char((unsigned char)*p))
            return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Checks a label list: name="value"{,name="value"} with escaped values; label names must not be
 * reserved ("__" prefix, or "le" on a histogram whose buckets add it). */
static int valid_labels(const char *labels, metric_type_t type)
{
    const char *p = labels;
    while (*p != '\0') {
        const char *name = p;
        if (!isalpha((unsigned char)*p) && *p != '_')
            return 0;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        size_t name_len = (size_t)(p - name);
        if (name_len >= 2 && name[0] == '_' && name[1] == '_')
            return 0;
        if (type == TYPE_HISTOGRAM && name_len == 2 && strncmp(name, "le", 2) == 0)
            return 0;
        if (p[0] != '=' || p[1] != '"')
            return 0;
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return 0;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return 0;
            }
            p++;
        }
        p++;
        if (*p == ',' && p[1] != '\0')
            p++;
        else if (*p != '\0')
            return 0;
    }
    return 1;
}
#endif

/* --- Registration. --- */

static family_t *find_family(dl_metrics_t *m, const char *name)
{
    for (family_t *f = m->first; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static family_t *add_family(dl_metrics_t *m, const char *name, const char *help, metric_type_t type)
{
    if (help == NULL)
        help = "";
    size_t name_size = strlen(name) + 1, help_size = strlen(help) + 1;
    family_t *f = calloc(1, sizeof(*f) + name_size + help_size);
    if (f == NULL)
        return NULL;
    f->type = type;
    f->name = (char *)(f + 1);
    f->help = f->name + name_size;
    memcpy(f->name, name, name_size);
    memcpy(f->help, help, help_size);
    if (m->last != NULL)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

/* Allocates a series with room for its labels and, for histograms, its buckets. */
static dl_metric_t *new_series(const char *labels, const double *bounds, size_t nbounds)
{
    size_t labels_size = strlen(labels) + 1;
    size_t bounds_size = nbounds * sizeof(double);
    size_t counts_size = bounds != NULL ? (nbounds + 1) * sizeof(uint64_t) : 0;
    /* The struct holds doubles, so its size keeps the arrays after it aligned. */
    dl_metric_t *s = calloc(1, sizeof(*s) + bounds_size + counts_size + labels_size);
    if (s == NULL)
        return NULL;
    char *tail = (char *)(s + 1);
    if (bounds != NULL) {
        s->nbounds = nbounds;
        s->bounds = (double *)tail;
        memcpy(s->bounds, bounds, bounds_size);
        s->counts = (uint64_t *)(tail + bounds_size);
    }
    char *label_copy = tail + bounds_size + counts_size;
    memcpy(label_copy, labels, labels_size);
    s->labels = label_copy;
    return s;
}

/* The one registration path behind every public constructor. */
static dl_metric_t *register_series(dl_metrics_t *m, const char *name, const char *help,
                                    const char *labels, metric_type_t type, double (*fn)(void *ctx),
                                    void *ctx, const double *bounds, size_t nbounds)
{
    if (m == NULL)
        return NULL;
    if (labels == NULL)
        labels = "";
    assert(valid_metric_name(name));
    assert(type != TYPE_COUNTER || ends_with(name, "_total"));
    assert(valid_labels(labels, type));
    family_t *f = find_family(m, name);
    if (f != NULL) {
        assert(f->type == type);
        for (dl_metric_t *s = f->first; s != NULL; s = s->next)
            if (strcmp(s->labels, labels) == 0)
                return s;
    }
    dl_metric_t *s = new_series(labels, bounds, nbounds);
    if (s == NULL)
        return NULL;
    if (f == NULL) {
        f = add_family(m, name, help, type);
        if (f == NULL) {
            free(s);
            return NULL;
        }
    }
    s->family = f;
    s->fn = fn;
    s->ctx = ctx;
    if (f->last != NULL)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

dl_metric_t *dl_metrics_counter(dl_metrics_t *m, const char *name, const char *help,
                                const char *labels)
{
    return register_series(m, name, help, labels, TYPE_COUNTER, NULL, NULL, NULL, 0);
}

dl_metric_t *dl_metrics_gauge(dl_metrics_t *m, const char *name, const char *help,
                              const char *labels)
{
    return register_series(m, name, help, labels, TYPE_GAUGE, NULL, NULL, NULL, 0);
}

dl_metric_t *dl_metrics_gauge_fn(dl_metrics_t *m, const char *name, const char *help,
                                 const char *labels, double (*fn)(void *ctx), void *ctx)
{
    assert(fn != NULL);
    return register_series(m, name, help, labels, TYPE_GAUGE, fn, ctx, NULL, 0);
}

dl_metric_t *dl_metrics_counter_fn(dl_metrics_t *m, const char *name, const char *help,
                                   const char *labels, double (*fn)(void *ctx), void *ctx)
{
    assert(fn != NULL);
    return register_series(m, name, help, labels, TYPE_COUNTER, fn, ctx, NULL, 0);
}

dl_metric_t *dl_metrics_histogram(dl_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds)
{
#ifndef NDEBUG
    for (size_t i = 1; i < nbounds; i++)
        assert(bounds[i - 1] < bounds[i]);
#endif
    static const double none[1] = {0};
    return register_series(m, name, help, labels, TYPE_HISTOGRAM, NULL, NULL,
                           bounds != NULL ? bounds : none, nbounds);
}

int dl_metrics_label_append(char *buf, size_t size, const char *name, const char *value)
{
    size_t used = strlen(buf);
    size_t need = used + (used > 0) + strlen(name) + 3; /* ,name="" */
    for (const char *p = value; *p != '\0'; p++)
        need += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
    if (need + 1 > size)
        return -ENOSPC;
    char *w = buf + used;
    if (used > 0)
        *w++ = ',';
    w += sprintf(w, "%s=\"", name);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            *w++ = '\\';
            *w++ = *p;
        } else if (*p == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        } else {
            *w++ = *p;
        }
    }
    *w++ = '"';
    *w = '\0';
    return 0;
}

/* --- Updates. --- */

void dl_metric_inc(dl_metric_t *c)
{
    dl_metric_add(c, 1);
}

void dl_metric_add(dl_metric_t *c, double v)
{
    if (c == NULL)
        return;
    assert(c->family->type != TYPE_HISTOGRAM && c->fn == NULL);
    assert(c->family->type != TYPE_COUNTER || v >= 0);
    c->value += v;
}

void dl_metric_set(dl_metric_t *g, double v)
{
    if (g == NULL)
        return;
    assert(g->family->type == TYPE_GAUGE && g->fn == NULL);
    g->value = v;
}

void dl_metric_observe(dl_metric_t *h, double v)
{
    if (h == NULL)
        return;
    assert(h->family->type == TYPE_HISTOGRAM);
    /* Binary search for the first bound >= v; NaN and values above every bound land in +Inf. */
    size_t lo = 0, hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v))
        lo = h->nbounds;
    h->counts[lo]++;
    h->sum += v;
}

double dl_metric_value(const dl_metric_t *c)
{
    if (c == NULL)
        return 0;
    assert(c->family->type != TYPE_HISTOGRAM);
    return c->fn != NULL ? c->fn(c->ctx) : c->value;
}

/* --- Rendering. --- */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* an allocation failed; later appends are ignored */
} text_t;

static void text_reserve(text_t *t, size_t extra)
{
    if (t->failed || t->len + extra + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + extra + 1)
        cap *= 2;
    char *data = realloc(t->data, cap);
    if (data == NULL) {
        t->failed = 1;
        return;
    }
    t->data = data;
    t->cap = cap;
}

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    text_reserve(t, (size_t)n);
    if (t->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static void text_append(text_t *t, const char *data, size_t len)
{
    text_reserve(t, len);
    if (t->failed)
        return;
    memcpy(t->data + t->len, data, len);
    t->len += len;
}

/* Writes HELP text with '\\' and newlines escaped, as the format requires. */
static void text_help(text_t *t, const char *help)
{
    for (;;) {
        size_t run = strcspn(help, "\\\n");
        text_append(t, help, run);
        help += run;
        if (*help == '\0')
            return;
        text_append(t, *help == '\n' ? "\\n" : "\\\\", 2);
        help++;
    }
}

/* Formats v as the shortest decimal that reads back as the same double, like Go's
 * strconv.FormatFloat(v, 'g', -1, 64) that Prometheus uses; +Inf, -Inf and NaN as spelled there. */
static void format_double(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* One sample line: name{labels[,extra]} value. */
static void text_sample(text_t *t, const char *name, const char *suffix, const char *labels,
                        const char *extra, double value)
{
    char number[32];
    format_double(value, number, sizeof(number));
    int has_labels = labels[0] != '\0', has_extra = extra != NULL;
    text_printf(t, "%s%s%s%s%s%s%s %s\n", name, suffix, has_labels || has_extra ? "{" : "", labels,
                has_labels && has_extra ? "," : "", has_extra ? extra : "",
                has_labels || has_extra ? "}" : "", number);
}

static void render_histogram(text_t *t, const family_t *f, const dl_metric_t *s)
{
    char le[48], bound[32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= s->nbounds; i++) {
        cumulative += s->counts[i];
        if (i < s->nbounds)
            format_double(s->bounds[i], bound, sizeof(bound));
        else
            snprintf(bound, sizeof(bound), "+Inf");
        snprintf(le, sizeof(le), "le=\"%s\"", bound);
        text_sample(t, f->name, "_bucket", s->labels, le, (double)cumulative);
    }
    text_sample(t, f->name, "_sum", s->labels, NULL, s->sum);
    text_sample(t, f->name, "_count", s->labels, NULL, (double)cumulative);
}

int dl_metrics_render(dl_metrics_t *m, char **out, size_t *len)
{
    text_t t = {0};
    text_reserve(&t, 0);
    for (const family_t *f = m->first; f != NULL; f = f->next) {
        text_printf(&t, "# HELP %s ", f->name);
        text_help(&t, f->help);
        text_printf(&t, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const dl_metric_t *s = f->first; s != NULL; s = s->next) {
            if (f->type == TYPE_HISTOGRAM)
                render_histogram(&t, f, s);
            else
                text_sample(&t, f->name, "", s->labels, NULL, dl_metric_value(s));
        }
    }
    if (t.failed) {
        free(t.data);
        return -ENOMEM;
    }
    t.data[t.len] = '\0';
    *out = t.data;
    if (len != NULL)
        *len = t.len;
    return 0;
}

/* --- Standard process metrics from /proc/self. --- */

/* Reads field `index` (1-based, as in proc(5)) of /proc/self/stat. The second field, the command
 * name, may hold spaces and parentheses, so counting starts after its closing parenthesis. */
static int read_proc_stat_field(int index, unsigned long long *out)
{
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "r");
    if (fp == NULL)
        return -errno;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL || index < 3)
        return -EINVAL;
    p++;
    for (int field = 3; field <= index; field++) {
        char *end;
        while (*p == ' ')
            p++;
        if (field == index) {
            errno = 0;
            *out = strtoull(p, &end, 10);
            return (end == p || errno != 0) ? -EINVAL : 0;
        }
        p = strchr(p, ' ');
        if (p == NULL)
            return -EINVAL;
    }
    return -EINVAL;
}

static double process_cpu_seconds(void *ctx)
{
    unsigned long long utime, stime;
    if (read_proc_stat_field(14, &utime) != 0 || read_proc_stat_field(15, &stime) != 0)
        return NAN;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double process_resident_memory(void *ctx)
{
    unsigned long long size, resident;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp == NULL)
        return NAN;
    int n = fscanf(fp, "%llu %llu", &size, &resident);
    fclose(fp);
    if (n != 2)
        return NAN;
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double process_open_fds(void *ctx)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return NAN;
    double count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            count++;
    closedir(dir);
    return count - 1; /* the descriptor opendir() itself holds */
}

/* The process start time: boot time (btime in /proc/stat) plus field 22 of /proc/self/stat, the
 * start in clock ticks after boot. */
static double process_start_time(void)
{
    unsigned long long start_ticks, btime = 0;
    if (read_proc_stat_field(22, &start_ticks) != 0)
        return NAN;
    FILE *fp = fopen("/proc/stat", "r");
    if (fp == NULL)
        return NAN;
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL)
        found = sscanf(line, "btime %llu", &btime) == 1;
    fclose(fp);
    if (!found)
        return NAN;
    return (double)btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK);
}

void dl_metrics_add_process(dl_metrics_t *m)
{
    dl_metrics_gauge_fn(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL,
                        process_resident_memory, NULL);
    dl_metrics_counter_fn(m, "process_cpu_seconds_total",
                          "Total user and system CPU time spent in seconds.", NULL,
                          process_cpu_seconds, NULL);
    dl_metrics_gauge_fn(m, "process_open_fds", "Number of open file descriptors.", NULL,
                        process_open_fds, NULL);
    dl_metric_t *start =
        dl_metrics_gauge(m, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", NULL);
    if (start != NULL && dl_metric_value(start) == 0)
        dl_metric_set(start, process_start_time());
}
