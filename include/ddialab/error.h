/*
 * Error codes shared by every ddialab module.
 *
 * Every fallible function returns an int: 0 on success, a negative errno value (-ENOENT, -EIO,
 * ...) for system errors, or one of the DL_E* project codes below (all below -1000, so they never
 * collide with errno). One X-macro table generates the enum, the short machine name used in JSON
 * error bodies ("not_leader"), the human message and the HTTP status, so the four can never drift
 * apart.
 */
#ifndef DDIALAB_ERROR_H
#define DDIALAB_ERROR_H

/* X(ENUM_SUFFIX, value, name, http_status, message) */
#define DL_ERROR_TABLE(X)                                                                          \
    X(BADREQUEST, -1001, "bad_request", 400, "the request is malformed")                           \
    X(NOTFOUND, -1002, "not_found", 404, "no such key or resource")                                \
    X(METHOD, -1003, "method_not_allowed", 405, "method not allowed on this path")                 \
    X(PRECONDITION, -1004, "precondition_failed", 412,                                             \
      "the condition on the request did not hold")                                                 \
    X(TOOLARGE, -1005, "too_large", 413, "the request is larger than the configured limit")        \
    X(NOTLEADER, -1006, "not_leader", 307, "this node is not the leader")                          \
    X(NOLEADER, -1007, "no_leader", 503, "the cluster has no known leader")                        \
    X(NOQUORUM, -1008, "not_enough_replicas", 503,                                                 \
      "the write could not gather the acknowledgements its replication mode needs in time")        \
    X(CORRUPT, -1009, "corrupt", 500, "stored data failed its checksum")                           \
    X(PROTO, -1010, "protocol_error", 400, "the peer sent a frame that does not decode")           \
    X(CONFIG, -1011, "bad_config", 400, "the configuration is invalid")                            \
    X(WRONGNODE, -1012, "wrong_node", 409,                                                         \
      "the data directory belongs to another node or cluster")                                     \
    X(SHUTDOWN, -1014, "shutting_down", 503, "the node is shutting down")                          \
    X(INTERNAL, -1015, "internal", 500, "internal error")                                          \
    X(DISCARDED, -1016, "discarded", 503, "the entry was discarded by a new leader")               \
    X(BUSY, -1017, "busy", 503, "too many requests are waiting; try again")                        \
    X(UNSUPPORTED, -1018, "unsupported", 400, "the operation is not supported")                    \
    X(LEADERALIVE, -1019, "leader_alive", 409, "this node still hears from a live leader")

enum {
#define DL__ERROR_ENUM(suffix, value, name, status, message) DL_E##suffix = value,
    DL_ERROR_TABLE(DL__ERROR_ENUM)
#undef DL__ERROR_ENUM
};

/* The human message for rv (errno or project code). Never NULL; static storage. */
const char *dl_strerror(int rv);

/* The machine name for rv, e.g. "not_leader", "ENOENT". Never NULL; static storage. */
const char *dl_err_name(int rv);

/* The HTTP status that a handler answers for rv: 400/404/405/409/412/413/503/500. */
int dl_err_http_status(int rv);

#endif
