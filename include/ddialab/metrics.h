/*
 * Metrics: one registry per process, rendered as Prometheus text (exposition format 0.0.4) for
 * GET /metrics.
 *
 * A registry holds families; a family is one metric name with one HELP text and one type, and
 * holds one series per label set. Code registers its series once at start-up and keeps the
 * returned dl_metric_t pointers; updating a series is then a plain memory write:
 *
 *     dl_metric_t *puts = dl_metrics_counter(m, "ddialab_kv_puts_total", "PUT requests served.",
 *                                            NULL);
 *     dl_metric_t *lat = dl_metrics_histogram(m, "ddialab_kv_put_duration_seconds",
 *                                             "Time to acknowledge a PUT.", NULL,
 *                                             dl_metrics_latency_seconds_buckets,
 *                                             dl_metrics_latency_seconds_nbuckets);
 *     dl_metric_inc(puts);
 *     dl_metric_observe(lat, 0.0021);
 *
 * Names follow ddialab_<module>_<thing>_<unit>[_total] with base units (seconds, bytes);
 * counters end in _total. Label values must come from a small, bounded set (a peer id, an HTTP
 * status code), never from user input such as keys. docs/metrics.md has the rules.
 *
 * Not thread-safe: a registry and its series are used from the loop thread only. Work running
 * on other threads hands its numbers back to the loop thread (or is read at scrape time by a
 * dl_metrics_gauge_fn callback that does its own synchronisation).
 *
 * Misuse by our own code (a counter whose name does not end in _total, one name registered with
 * two types, a malformed label list, a counter decremented) is caught by assert() in debug
 * builds.
 */
#ifndef DDIALAB_METRICS_H
#define DDIALAB_METRICS_H

#include <stddef.h>

/* The Content-Type header value for a rendered registry. */
#define DL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct dl_metrics_s dl_metrics_t; /* a registry */
typedef struct dl_metric_s dl_metric_t;   /* one series (one name + one label set) */

/* Allocates an empty registry. Returns NULL on allocation failure. Free with dl_metrics_free(). */
dl_metrics_t *dl_metrics_new(void);

/* Frees the registry and every series in it; all dl_metric_t pointers from it become invalid.
 * m may be NULL. */
void dl_metrics_free(dl_metrics_t *m);

/*
 * Registers a series, or finds the one already registered under the same name and labels.
 *
 * name and help are copied. help is free text (it is escaped when rendered).
 * labels is NULL (or "") for none, or a Prometheus label list without braces, e.g. "peer=\"2\""
 * or "code=\"200\",method=\"GET\"", copied. Values must already be escaped; build lists with
 * dl_metrics_label_append() when a value may contain '"', '\\' or a newline. The label name "le"
 * is reserved for histogram buckets.
 *
 * Series of one name form one family, rendered together with one HELP and one TYPE line (the
 * help and type of the first registration), in the order the families were first registered.
 *
 * The returned series lives as long as the registry. Returns NULL only on allocation failure, or
 * when m is NULL; every dl_metric_* update ignores a NULL series, so callers need not check.
 */
dl_metric_t *dl_metrics_counter(dl_metrics_t *m, const char *name, const char *help,
                                const char *labels);
dl_metric_t *dl_metrics_gauge(dl_metrics_t *m, const char *name, const char *help,
                              const char *labels);

/* A gauge computed at scrape time: fn(ctx) is called by dl_metrics_render() and
 * dl_metric_value(). ctx must stay valid as long as the registry. */
dl_metric_t *dl_metrics_gauge_fn(dl_metrics_t *m, const char *name, const char *help,
                                 const char *labels, double (*fn)(void *ctx), void *ctx);

/* A counter computed at scrape time, for totals kept elsewhere (CPU seconds, bytes written by a
 * storage thread). fn must never return less than it returned before. */
dl_metric_t *dl_metrics_counter_fn(dl_metrics_t *m, const char *name, const char *help,
                                   const char *labels, double (*fn)(void *ctx), void *ctx);

/* A histogram. bounds are the ascending bucket upper bounds without +Inf (which is implicit);
 * copied. An observation v falls in every bucket whose bound is >= v. */
dl_metric_t *dl_metrics_histogram(dl_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds);

/* Bucket bounds for request latencies: 0.0001 s to 10 s in 1-2.5-5 steps (roughly x2.5). */
extern const double dl_metrics_latency_seconds_buckets[];
extern const size_t dl_metrics_latency_seconds_nbuckets;

/*
 * Appends name="value" to the NUL-terminated label list in buf (with a comma when buf is not
 * empty), escaping '\\', '"' and newlines in value as the text format requires. Returns 0, or
 * -ENOSPC (buf unchanged) when it does not fit in size bytes.
 */
int dl_metrics_label_append(char *buf, size_t size, const char *name, const char *value);

/* Updates. Counters: inc and add (v >= 0). Gauges: inc, add (any sign) and set. Histograms:
 * observe. Series computed by a function accept no updates. A NULL series is ignored. */
void dl_metric_inc(dl_metric_t *c);
void dl_metric_add(dl_metric_t *c, double v);
void dl_metric_set(dl_metric_t *g, double v);
void dl_metric_observe(dl_metric_t *h, double v);

/* The current value of a counter or gauge (calling fn for computed ones); for tests and
 * /status. Returns 0 for a NULL series. */
double dl_metric_value(const dl_metric_t *c);

/*
 * Renders every family as Prometheus text exposition format 0.0.4. On success returns 0 and sets
 * *out to a malloc'd, NUL-terminated text that the caller frees, and *len to its length without
 * the NUL (len may be NULL). Returns -ENOMEM on allocation failure (*out untouched).
 */
int dl_metrics_render(dl_metrics_t *m, char **out, size_t *len);

/*
 * Registers the standard process metrics that Prometheus clients export, read from /proc/self
 * at scrape time: process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds
 * and process_start_time_seconds (Unix time). Calling it twice registers nothing new.
 */
void dl_metrics_add_process(dl_metrics_t *m);

#endif
