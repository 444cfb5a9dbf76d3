/*
 * The Kafka protocol's requests as a whole: which APIs and versions the broker serves, request
 * headers, response frames and the ApiVersions answer. Pure code; the handlers of each API are
 * in handlers.c, the connections in broker.c.
 *
 * Versions. Every API is advertised from version 0 (librdkafka derives features from ranges
 * that must overlap, see shared/research/events.md 1.4) up to its highest non-flexible version
 * that we implement, so no client ever sends us a flexible (KIP-482) body, with one exception:
 * librdkafka's first ApiVersions is v3, flexible; it gets UNSUPPORTED_VERSION with a v0 body
 * listing our versions, as a Kafka broker answers, and retries with v0.
 */
#ifndef DDIALAB_EVENTS_PROTOCOL_H
#define DDIALAB_EVENTS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"
#include "events/kwire.h"

/* The frame size limit: a larger size prefix closes the connection (Kafka's
 * socket.request.max.bytes is 100 MiB; our batches are limited to 16 MiB). */
#define DL_KAFKA_MAX_FRAME (64u << 20)

typedef enum {
    DL_KAPI_PRODUCE = 0,
    DL_KAPI_FETCH = 1,
    DL_KAPI_LIST_OFFSETS = 2,
    DL_KAPI_METADATA = 3,
    DL_KAPI_OFFSET_COMMIT = 8,
    DL_KAPI_OFFSET_FETCH = 9,
    DL_KAPI_FIND_COORDINATOR = 10,
    DL_KAPI_JOIN_GROUP = 11,
    DL_KAPI_HEARTBEAT = 12,
    DL_KAPI_LEAVE_GROUP = 13,
    DL_KAPI_SYNC_GROUP = 14,
    DL_KAPI_DESCRIBE_GROUPS = 15,
    DL_KAPI_LIST_GROUPS = 16,
    DL_KAPI_API_VERSIONS = 18,
    DL_KAPI_CREATE_TOPICS = 19,
    DL_KAPI_DELETE_TOPICS = 20,
    DL_KAPI_INIT_PRODUCER_ID = 22,
} dl_kapi_key_t;

/* Kafka's error codes that the broker answers with (Errors.java). */
typedef enum {
    DL_KERR_NONE = 0,
    DL_KERR_OFFSET_OUT_OF_RANGE = 1,
    DL_KERR_CORRUPT_MESSAGE = 2,
    DL_KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    DL_KERR_INVALID_FETCH_SIZE = 4,
    DL_KERR_LEADER_NOT_AVAILABLE = 5,
    DL_KERR_NOT_LEADER_OR_FOLLOWER = 6,
    DL_KERR_REQUEST_TIMED_OUT = 7,
    DL_KERR_MESSAGE_TOO_LARGE = 10,
    DL_KERR_COORDINATOR_NOT_AVAILABLE = 15,
    DL_KERR_NOT_COORDINATOR = 16,
    DL_KERR_INVALID_TOPIC_EXCEPTION = 17,
    DL_KERR_RECORD_LIST_TOO_LARGE = 18,
    DL_KERR_INVALID_REQUIRED_ACKS = 21,
    DL_KERR_ILLEGAL_GENERATION = 22,
    DL_KERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    DL_KERR_INVALID_GROUP_ID = 24,
    DL_KERR_UNKNOWN_MEMBER_ID = 25,
    DL_KERR_INVALID_SESSION_TIMEOUT = 26,
    DL_KERR_REBALANCE_IN_PROGRESS = 27,
    DL_KERR_TOPIC_AUTHORIZATION_FAILED = 29,
    DL_KERR_UNSUPPORTED_VERSION = 35,
    DL_KERR_TOPIC_ALREADY_EXISTS = 36,
    DL_KERR_INVALID_PARTITIONS = 37,
    DL_KERR_INVALID_REPLICATION_FACTOR = 38,
    DL_KERR_INVALID_REPLICA_ASSIGNMENT = 39,
    DL_KERR_INVALID_CONFIG = 40,
    DL_KERR_INVALID_REQUEST = 42,
    DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    DL_KERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    DL_KERR_INVALID_PRODUCER_EPOCH = 47,
    DL_KERR_KAFKA_STORAGE_ERROR = 56,
    DL_KERR_UNKNOWN_PRODUCER_ID = 59,
    DL_KERR_MEMBER_ID_REQUIRED = 79,
    DL_KERR_INVALID_RECORD = 87,
    DL_KERR_UNKNOWN_SERVER_ERROR = -1,
} dl_kerror_t;

/* An API the broker serves: the versions it advertises, and Kafka's first flexible version. */
typedef struct dl_kapi_s {
    int16_t key;
    int16_t min_version, max_version;
    int16_t first_flexible;
    const char *name;
} dl_kapi_t;

/* The served APIs, in key order; *n receives how many. */
const dl_kapi_t *dl_kapis(size_t *n);
/* The served API with key, or NULL. */
const dl_kapi_t *dl_kapi_find(int16_t key);

typedef struct dl_kheader_s {
    int16_t api_key, api_version;
    int32_t correlation_id;
    dl_kslice_t client_id; /* len -1: null */
    int flexible;          /* header v2 (tagged fields follow client_id) */
} dl_kheader_t;

typedef enum {
    DL_KHEADER_OK = 0,
    DL_KHEADER_UNSUPPORTED_VERSION, /* ApiVersions above our max: answer with its v0 body */
    DL_KHEADER_CLOSE, /* unknown API, a version we do not serve, or an unreadable header: a
                       * Kafka broker closes the connection, and so do we */
} dl_kheader_status_t;

/*
 * Reads the request header at the start of a frame (len bytes after the size prefix) into *h
 * and positions *body after it.
 */
dl_kheader_status_t dl_kheader_parse(const uint8_t *frame, size_t len, dl_kheader_t *h,
                                     dl_kreader_t *body);

/* Starts a response to h in b: a size placeholder and the correlation id (response header v0;
 * no served version is flexible). Returns the offset to pass to dl_kresponse_end. */
size_t dl_kresponse_begin(dl_buf_t *b, const dl_kheader_t *h);
/* Writes the frame's size now that its body is complete. */
void dl_kresponse_end(dl_buf_t *b, size_t start);

/* Appends the whole ApiVersions response to h (error UNSUPPORTED_VERSION and a v0 body when
 * h's version is above our max). 0 or -ENOMEM. */
int dl_kapi_versions_respond(dl_buf_t *b, const dl_kheader_t *h);

#endif
