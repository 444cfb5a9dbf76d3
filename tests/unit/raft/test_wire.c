/* Peer frames: what one node encodes, the other decodes; damaged frames are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ddialab/error.h"
#include "ddialab/raft_wire.h"

static dl_buf_t encode_append(void)
{
    static dl_raft_entry_t entries[2] = {
        {.index = 8, .term = 3, .type = DL_RAFT_ENTRY_NORMAL, .data = "value-8", .len = 7},
        {.index = 9, .term = 3, .type = DL_RAFT_ENTRY_NOOP, .data = NULL, .len = 0},
    };
    dl_raft_msg_t m = {.type = DL_RAFT_MSG_APPEND,
                       .from = 1,
                       .to = 2,
                       .term = 3,
                       .prev_index = 7,
                       .prev_term = 2,
                       .commit = 6,
                       .n_entries = 2,
                       .entries = entries};
    dl_buf_t b = {0};
    assert_int_equal(dl_wire_encode_msg(&b, &m), 0);
    return b;
}

static void test_append_round_trips_with_entries(void **state)
{
    (void)state;
    dl_buf_t b = encode_append();
    size_t len;
    assert_int_equal(dl_wire_peek(b.data, b.len, &len), 0);
    assert_int_equal(len, b.len);
    dl_wire_frame_t f;
    assert_int_equal(dl_wire_decode(b.data, len, &f), 0);
    assert_int_equal(f.kind, DL_RAFT_MSG_APPEND);
    assert_int_equal(f.msg.term, 3);
    assert_int_equal(f.msg.prev_index, 7);
    assert_int_equal(f.msg.prev_term, 2);
    assert_int_equal(f.msg.commit, 6);
    assert_int_equal(f.msg.n_entries, 2);
    assert_int_equal(f.msg.entries[0].index, 8);
    assert_int_equal(f.msg.entries[0].len, 7);
    assert_memory_equal(f.msg.entries[0].data, "value-8", 7);
    assert_int_equal(f.msg.entries[1].type, DL_RAFT_ENTRY_NOOP);
    dl_wire_frame_clear(&f);
    dl_buf_free(&b);
}

static void test_a_snapshot_chunk_round_trips_and_may_not_overrun_its_snapshot(void **state)
{
    (void)state;
    dl_raft_msg_t m = {.type = DL_RAFT_MSG_SNAPSHOT,
                       .from = 1,
                       .to = 3,
                       .term = 4,
                       .snap_index = 900,
                       .snap_term = 4,
                       .snap_size = 20,
                       .snap_offset = 12,
                       .data = "chunk-12",
                       .data_len = 8};
    dl_buf_t b = {0};
    assert_int_equal(dl_wire_encode_msg(&b, &m), 0);
    dl_wire_frame_t f;
    assert_int_equal(dl_wire_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.kind, DL_RAFT_MSG_SNAPSHOT);
    assert_int_equal(f.msg.snap_index, 900);
    assert_int_equal(f.msg.snap_term, 4);
    assert_int_equal(f.msg.snap_size, 20);
    assert_int_equal(f.msg.snap_offset, 12);
    assert_int_equal(f.msg.data_len, 8);
    assert_memory_equal(f.msg.data, "chunk-12", 8);
    dl_wire_frame_clear(&f);
    dl_buf_free(&b);
    /* A chunk that would end past the snapshot's size is refused. */
    m.snap_offset = 13;
    assert_int_equal(dl_wire_encode_msg(&b, &m), 0);
    assert_int_equal(dl_wire_decode(b.data, b.len, &f), DL_EPROTO);
    dl_buf_free(&b);
}

static void test_hello_round_trips(void **state)
{
    (void)state;
    dl_wire_hello_t h = {.node_id = 3, .cluster_id = "lab", .http_addr = "127.0.0.1:8003"};
    dl_buf_t b = {0};
    assert_int_equal(dl_wire_encode_hello(&b, &h), 0);
    dl_wire_frame_t f;
    assert_int_equal(dl_wire_decode(b.data, b.len, &f), 0);
    assert_int_equal(f.kind, DL_WIRE_HELLO);
    assert_int_equal(f.hello.node_id, 3);
    assert_string_equal(f.hello.cluster_id, "lab");
    assert_string_equal(f.hello.http_addr, "127.0.0.1:8003");
    dl_buf_free(&b);
}

static void test_partial_frame_asks_for_more_bytes(void **state)
{
    (void)state;
    dl_buf_t b = encode_append();
    size_t len;
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(dl_wire_peek(b.data, cut, &len), 1);
    dl_buf_free(&b);
}

static void test_every_flipped_byte_is_refused(void **state)
{
    (void)state;
    dl_buf_t b = encode_append();
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1 << bit);
            size_t len;
            int rc = dl_wire_peek(b.data, b.len, &len);
            dl_wire_frame_t f;
            /* Either the header is refused, more bytes are awaited, or the body is refused. */
            if (rc == 0 && len == b.len)
                assert_int_equal(dl_wire_decode(b.data, len, &f), DL_EPROTO);
            else
                assert_true(rc == DL_EPROTO || rc == 1 || len != b.len);
            b.data[i] ^= (uint8_t)(1 << bit);
        }
    }
    dl_buf_free(&b);
}

static void test_garbage_and_oversized_frames_are_refused(void **state)
{
    (void)state;
    size_t len;
    assert_int_equal(dl_wire_peek((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &len), DL_EPROTO);
    uint8_t header[12] = {'D', 'L', DL_WIRE_VERSION, 1, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    assert_int_equal(dl_wire_peek(header, sizeof(header), &len), DL_EPROTO);
    header[2] = DL_WIRE_VERSION + 1;
    assert_int_equal(dl_wire_peek(header, 3, &len), DL_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_round_trips_with_entries),
        cmocka_unit_test(test_hello_round_trips),
        cmocka_unit_test(test_a_snapshot_chunk_round_trips_and_may_not_overrun_its_snapshot),
        cmocka_unit_test(test_partial_frame_asks_for_more_bytes),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_garbage_and_oversized_frames_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
