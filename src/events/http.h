/*
 * The broker's HTTP API for curl (http.c; docs/events.md, "HTTP API"): read-only views of the
 * topics, their records, and the consumer groups with their lag.
 */
#ifndef DDIALAB_EVENTS_HTTP_H
#define DDIALAB_EVENTS_HTTP_H

#include <stdint.h>
#include <uv.h>

#include "ddialab/http_server.h"
#include "events/broker.h"
#include "events/groups.h"
#include "events/offsets.h"
#include "events/topics.h"

typedef struct dl_events_http_s {
    dl_topics_t *topics;
    dl_groups_t *groups;
    dl_offsets_t *offsets;
    const char *kafka_address; /* "127.0.0.1:9092", for /status */
    int32_t node_id;
    struct dl_metrics_s *metrics;          /* GET /metrics */
    dl_broker_t *broker;                   /* POST /topics/{t}/records stores through it */
    int auto_create;                       /* POST to an unknown topic creates it */
    int64_t retention_ms, retention_bytes; /* the broker's, for topics that set none */
    uint32_t next_partition;               /* round robin for records without a key */
    dl_http_server_t *server;              /* set by dl_events_http_start */
} dl_events_http_t;

/* Serves h (which must outlive the server) on host:port. errmsg on failure. Stop the server
 * with dl_http_server_stop(h->server, ...). */
int dl_events_http_start(uv_loop_t *loop, const char *host, int port, dl_events_http_t *h,
                         char *errmsg, size_t errlen);

#endif
