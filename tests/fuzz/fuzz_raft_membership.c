/*
 * libFuzzer target for configuration entries' payloads (dl_raft_membership_decode), which a node
 * reads from its leader and from its own log. Any input must either be refused with DL_EPROTO or
 * decode into a membership with at least one voter, no zero or duplicate id, and a context that
 * lies inside the input; such a membership re-encodes to exactly the input's bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "ddialab/raft.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_raft_membership: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dl_raft_membership_t m;
    const void *ctx = NULL;
    size_t ctx_len = 0;
    int rv = dl_raft_membership_decode(data, size, &m, &ctx, &ctx_len);
    if (rv != 0) {
        if (rv != DL_EPROTO)
            fail("an error other than DL_EPROTO");
        return 0;
    }
    size_t voters = 0;
    for (size_t i = 0; i < m.n; i++) {
        if (m.ids[i] == 0)
            fail("id 0 accepted");
        voters += !m.learner[i];
        for (size_t j = 0; j < i; j++)
            if (m.ids[j] == m.ids[i])
                fail("duplicate id accepted");
    }
    if (voters == 0)
        fail("a membership without a voter accepted");
    if ((const uint8_t *)ctx < data || (const uint8_t *)ctx + ctx_len != data + size)
        fail("the context does not end the input");
    uint8_t *out = malloc(size ? size : 1);
    if (out == NULL)
        return 0;
    size_t len = dl_raft_membership_encode(&m, ctx, ctx_len, out, size);
    if (len != size || memcmp(out, data, size) != 0)
        fail("re-encoding differs from the input");
    free(out);
    return 0;
}
