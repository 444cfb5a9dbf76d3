/*
 * The peer protocol: how Raft messages travel between kv nodes over TCP.
 *
 * Every frame is a 12-byte header followed by a body:
 *   bytes 0-1  magic "DL"
 *   byte  2    protocol version (DL_WIRE_VERSION)
 *   byte  3    frame kind (DL_WIRE_HELLO, or a dl_raft_msg_type_t)
 *   bytes 4-7  body length, little-endian (at most DL_WIRE_MAX_BODY)
 *   bytes 8-11 CRC-32C of the body
 * A connection starts with one HELLO from the dialing node (its id, cluster id and HTTP address);
 * after that it carries Raft messages in one direction. Anything that does not decode closes the
 * connection: a peer never guesses at a damaged frame.
 *
 * Pure: no I/O. The decoder is fuzzed (tests/fuzz/fuzz_raft_wire.c).
 */
#ifndef DDIALAB_RAFT_WIRE_H
#define DDIALAB_RAFT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"
#include "ddialab/raft.h"

#define DL_WIRE_VERSION      1
#define DL_WIRE_HEADER_BYTES 12
#define DL_WIRE_MAX_BODY     (64u << 20)
#define DL_WIRE_HELLO        0x10

typedef struct dl_wire_hello_s {
    uint64_t node_id;
    char cluster_id[64];
    char http_addr[128]; /* host:port where the node serves HTTP */
} dl_wire_hello_t;

typedef struct dl_wire_frame_s {
    uint8_t kind;
    dl_wire_hello_t hello; /* kind == DL_WIRE_HELLO */
    dl_raft_msg_t msg;     /* otherwise; msg.entries is malloc'd, entry data points into the body */
} dl_wire_frame_t;

/*
 * Looks at the start of a receive buffer. Returns 0 with *frame_len (header + body) when a whole
 * frame is there, 1 when more bytes are needed, DL_EPROTO for a bad magic, version or length.
 */
int dl_wire_peek(const uint8_t *buf, size_t len, size_t *frame_len);

/* Decodes one whole frame (as measured by dl_wire_peek). Returns 0 or DL_EPROTO. On success the
 * caller calls dl_wire_frame_clear; entry data stays valid while buf does. */
int dl_wire_decode(const uint8_t *buf, size_t frame_len, dl_wire_frame_t *out);
void dl_wire_frame_clear(dl_wire_frame_t *f);

/* Appends one frame to out. Entries must have their data filled in. 0 or -ENOMEM/-EINVAL. */
int dl_wire_encode_msg(dl_buf_t *out, const dl_raft_msg_t *m);
int dl_wire_encode_hello(dl_buf_t *out, const dl_wire_hello_t *h);

#endif
