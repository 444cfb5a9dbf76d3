/* Encoding and decoding of peer frames: header, CRC-32C, HELLO and Raft messages. */
#include "ddialab/raft_wire.h"

#include <string.h>

#include "ddialab/crc32c.h"
#include "ddialab/error.h"

/* Fixed part of an APPEND body after the kind-independent fields. */
#define MSG_FIXED_BYTES   (8 * 3 + 8 * 3 + 4 + 1 + 8 * 4)
#define ENTRY_FIXED_BYTES (8 + 1 + 4)
/* SNAPSHOT and SNAPSHOT_RESP add index, term, size, offset and the chunk's length. */
#define SNAP_FIXED_BYTES (8 * 4 + 4)

static int is_snapshot_kind(uint8_t kind)
{
    return kind == DL_RAFT_MSG_SNAPSHOT || kind == DL_RAFT_MSG_SNAPSHOT_RESP;
}

int dl_wire_peek(const uint8_t *buf, size_t len, size_t *frame_len)
{
    if (len >= 1 && buf[0] != 'D')
        return DL_EPROTO;
    if (len >= 2 && buf[1] != 'L')
        return DL_EPROTO;
    if (len >= 3 && buf[2] != DL_WIRE_VERSION)
        return DL_EPROTO;
    if (len < DL_WIRE_HEADER_BYTES)
        return 1;
    uint32_t body = dl_get_u32(buf + 4);
    if (body > DL_WIRE_MAX_BODY)
        return DL_EPROTO;
    *frame_len = DL_WIRE_HEADER_BYTES + (size_t)body;
    return len >= *frame_len ? 0 : 1;
}

/* Reserves the header, to be completed by end_frame once the body is written. */
static int begin_frame(dl_buf_t *out, uint8_t kind, size_t *start)
{
    *start = out->len;
    uint8_t header[DL_WIRE_HEADER_BYTES] = {'D', 'L', DL_WIRE_VERSION, kind};
    return dl_buf_append(out, header, sizeof(header));
}

static int end_frame(dl_buf_t *out, size_t start)
{
    size_t body = out->len - start - DL_WIRE_HEADER_BYTES;
    if (body > DL_WIRE_MAX_BODY) {
        out->len = start;
        return -EINVAL;
    }
    uint8_t *h = out->data + start;
    dl_set_u32(h + 4, (uint32_t)body);
    dl_set_u32(h + 8, dl_crc32c(0, h + DL_WIRE_HEADER_BYTES, body));
    return 0;
}

int dl_wire_encode_hello(dl_buf_t *out, const dl_wire_hello_t *h)
{
    size_t start;
    size_t cid = strnlen(h->cluster_id, sizeof(h->cluster_id));
    size_t http = strnlen(h->http_addr, sizeof(h->http_addr));
    int rv = begin_frame(out, DL_WIRE_HELLO, &start);
    rv = rv ? rv : dl_buf_put_u64(out, h->node_id);
    rv = rv ? rv : dl_buf_put_u8(out, (uint8_t)cid);
    rv = rv ? rv : dl_buf_append(out, h->cluster_id, cid);
    rv = rv ? rv : dl_buf_put_u8(out, (uint8_t)http);
    rv = rv ? rv : dl_buf_append(out, h->http_addr, http);
    rv = rv ? rv : end_frame(out, start);
    if (rv)
        out->len = start;
    return rv;
}

int dl_wire_encode_msg(dl_buf_t *out, const dl_raft_msg_t *m)
{
    size_t start;
    size_t bytes = MSG_FIXED_BYTES;
    for (uint32_t i = 0; i < m->n_entries; i++)
        bytes += ENTRY_FIXED_BYTES + m->entries[i].len;
    if (is_snapshot_kind(m->type))
        bytes += SNAP_FIXED_BYTES + m->data_len;
    if (m->data_len > 0 && m->data == NULL)
        return -EINVAL;
    int rv = begin_frame(out, m->type, &start);
    rv = rv ? rv : dl_buf_reserve(out, bytes);
    if (rv) {
        out->len = start;
        return rv;
    }
    dl_buf_put_u64(out, m->from);
    dl_buf_put_u64(out, m->to);
    dl_buf_put_u64(out, m->term);
    dl_buf_put_u64(out, m->prev_index);
    dl_buf_put_u64(out, m->prev_term);
    dl_buf_put_u64(out, m->commit);
    dl_buf_put_u32(out, m->n_entries);
    dl_buf_put_u8(out, m->reject);
    dl_buf_put_u64(out, m->match_index);
    dl_buf_put_u64(out, m->hint_index);
    dl_buf_put_u64(out, m->last_index);
    dl_buf_put_u64(out, m->last_term);
    dl_buf_put_u8(out, m->force);
    dl_buf_put_u64(out, m->context);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const dl_raft_entry_t *e = &m->entries[i];
        dl_buf_put_u64(out, e->term);
        dl_buf_put_u8(out, e->type);
        dl_buf_put_u32(out, e->len);
        dl_buf_append(out, e->data, e->len);
    }
    if (is_snapshot_kind(m->type)) {
        dl_buf_put_u64(out, m->snap_index);
        dl_buf_put_u64(out, m->snap_term);
        dl_buf_put_u64(out, m->snap_size);
        dl_buf_put_u64(out, m->snap_offset);
        dl_buf_put_u32(out, m->data_len);
        dl_buf_append(out, m->data, m->data_len);
    }
    rv = end_frame(out, start);
    return rv;
}

/* A bounds-checked reader over one frame body. */
struct reader {
    const uint8_t *p;
    size_t left;
    int bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t take_u64(struct reader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? dl_get_u64(p) : 0;
}

static uint32_t take_u32(struct reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? dl_get_u32(p) : 0;
}

static uint8_t take_u8(struct reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static int take_string(struct reader *r, char *dst, size_t cap)
{
    uint8_t n = take_u8(r);
    const uint8_t *p = take(r, n);
    if (p == NULL || n >= cap)
        return DL_EPROTO;
    memcpy(dst, p, n);
    dst[n] = '\0';
    if (memchr(dst, '\0', n) != NULL)
        return DL_EPROTO;
    return 0;
}

static int decode_msg(struct reader *r, uint8_t kind, dl_raft_msg_t *m)
{
    m->type = kind;
    m->from = take_u64(r);
    m->to = take_u64(r);
    m->term = take_u64(r);
    m->prev_index = take_u64(r);
    m->prev_term = take_u64(r);
    m->commit = take_u64(r);
    m->n_entries = take_u32(r);
    m->reject = take_u8(r);
    m->match_index = take_u64(r);
    m->hint_index = take_u64(r);
    m->last_index = take_u64(r);
    m->last_term = take_u64(r);
    m->force = take_u8(r);
    m->context = take_u64(r);
    if (r->bad || m->n_entries > DL_RAFT_MSG_MAX_ENTRIES || m->reject > 1 || m->force > 1)
        return DL_EPROTO;
    if (kind != DL_RAFT_MSG_APPEND && m->n_entries != 0)
        return DL_EPROTO;
    /* Each entry needs at least its fixed part: reject counts the body cannot hold. */
    if ((uint64_t)m->n_entries * ENTRY_FIXED_BYTES > r->left)
        return DL_EPROTO;
    if (m->prev_index > UINT64_MAX - m->n_entries)
        return DL_EPROTO;
    if (m->n_entries > 0) {
        m->entries = calloc(m->n_entries, sizeof(dl_raft_entry_t));
        if (m->entries == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        dl_raft_entry_t *e = &m->entries[i];
        e->index = m->prev_index + 1 + i;
        e->term = take_u64(r);
        e->type = take_u8(r);
        e->len = take_u32(r);
        e->data = take(r, e->len);
        if (r->bad || e->type > DL_RAFT_ENTRY_CONFIG || e->term == 0 || e->term > m->term)
            return DL_EPROTO;
    }
    if (is_snapshot_kind(kind)) {
        m->snap_index = take_u64(r);
        m->snap_term = take_u64(r);
        m->snap_size = take_u64(r);
        m->snap_offset = take_u64(r);
        m->data_len = take_u32(r);
        m->data = take(r, m->data_len);
        if (r->bad || m->snap_offset > m->snap_size || m->data_len > m->snap_size - m->snap_offset)
            return DL_EPROTO;
        if (kind == DL_RAFT_MSG_SNAPSHOT_RESP && m->data_len != 0)
            return DL_EPROTO;
    }
    if (r->left != 0)
        return DL_EPROTO;
    return 0;
}

int dl_wire_decode(const uint8_t *buf, size_t frame_len, dl_wire_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t expect;
    if (dl_wire_peek(buf, frame_len, &expect) != 0 || expect != frame_len)
        return DL_EPROTO;
    const uint8_t *body = buf + DL_WIRE_HEADER_BYTES;
    size_t body_len = frame_len - DL_WIRE_HEADER_BYTES;
    if (dl_crc32c(0, body, body_len) != dl_get_u32(buf + 8))
        return DL_EPROTO;
    struct reader r = {body, body_len, 0};
    out->kind = buf[3];
    int rv;
    switch (out->kind) {
    case DL_WIRE_HELLO:
        out->hello.node_id = take_u64(&r);
        rv = take_string(&r, out->hello.cluster_id, sizeof(out->hello.cluster_id));
        rv = rv ? rv : take_string(&r, out->hello.http_addr, sizeof(out->hello.http_addr));
        if (rv == 0 && (r.bad || r.left != 0 || out->hello.node_id == 0))
            rv = DL_EPROTO;
        break;
    case DL_RAFT_MSG_APPEND:
    case DL_RAFT_MSG_APPEND_RESP:
    case DL_RAFT_MSG_VOTE:
    case DL_RAFT_MSG_VOTE_RESP:
    case DL_RAFT_MSG_PRE_VOTE:
    case DL_RAFT_MSG_PRE_VOTE_RESP:
    case DL_RAFT_MSG_TIMEOUT_NOW:
    case DL_RAFT_MSG_SNAPSHOT:
    case DL_RAFT_MSG_SNAPSHOT_RESP:
        rv = decode_msg(&r, out->kind, &out->msg);
        break;
    default:
        rv = DL_EPROTO;
        break;
    }
    if (rv != 0)
        dl_wire_frame_clear(out);
    return rv;
}

void dl_wire_frame_clear(dl_wire_frame_t *f)
{
    free(f->msg.entries);
    f->msg.entries = NULL;
    f->msg.n_entries = 0;
}
