/*
 * Leveled logging to stderr with a process-wide prefix (e.g. "kv-2"), so that the interleaved
 * output of a local cluster can be told apart. Lines look like:
 *   2026-11-24T04:19:17.123Z kv-2 INFO  became follower of 1 at term 3
 * Thread-safe: each line is written with one write(2).
 */
#ifndef DDIALAB_LOGGING_H
#define DDIALAB_LOGGING_H

typedef enum {
    DL_LOG_DEBUG = 0,
    DL_LOG_INFO = 1,
    DL_LOG_WARN = 2,
    DL_LOG_ERROR = 3,
} dl_log_level_t;

/* Sets the prefix printed on every line (copied; at most 31 bytes kept). */
void dl_log_set_prefix(const char *prefix);

/* Sets the lowest level printed. The default is INFO, or DDIALAB_LOG_LEVEL from the environment. */
void dl_log_set_level(dl_log_level_t level);

/* Parses "debug", "info", "warn" or "error". Returns 0 or -EINVAL. */
int dl_log_parse_level(const char *text, dl_log_level_t *out);

void dl_log(dl_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DL_DEBUG(...) dl_log(DL_LOG_DEBUG, __VA_ARGS__)
#define DL_INFO(...)  dl_log(DL_LOG_INFO, __VA_ARGS__)
#define DL_WARN(...)  dl_log(DL_LOG_WARN, __VA_ARGS__)
#define DL_ERROR(...) dl_log(DL_LOG_ERROR, __VA_ARGS__)

#endif
