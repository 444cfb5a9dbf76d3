/*
 * The engine's memory for rows and versions. A million rows read at random miss the cache on
 * every statement, and in 4 KiB pages the TLB too; so rows and versions come from 2 MiB blocks
 * that the kernel may back with huge pages (madvise), carved per lock stripe: a row and its
 * versions are allocated and freed under its stripe's lock, so a stripe's free lists need no
 * lock of their own. Freed versions go back to their stripe's list of their size class; rows
 * live until the engine does. Pieces larger than the largest class come from malloc.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "txn/engine_internal.h"

#define BLOCK (2u << 20)  /* a huge page */
#define PIECE (64u << 10) /* what a stripe takes from the shared block at a time */

/* A fresh piece of memory for a stripe's slab; NULL when out of memory. */
static char *take_piece(dl_txn_engine_t *e)
{
    pthread_mutex_lock(&e->blocks_mu);
    char *piece = NULL;
    if (e->block_used + PIECE > BLOCK || e->n_blocks == 0) {
        if (e->n_blocks == e->cap_blocks) {
            size_t cap = e->cap_blocks ? e->cap_blocks * 2 : 8;
            void **b = realloc(e->blocks, cap * sizeof(*b));
            if (b == NULL)
                goto out;
            e->blocks = b;
            e->cap_blocks = cap;
        }
        void *block = aligned_alloc(BLOCK, BLOCK);
        if (block == NULL)
            goto out;
        (void)madvise(block, BLOCK, MADV_HUGEPAGE); /* advice: without it, small pages */
        e->blocks[e->n_blocks++] = block;
        e->block_used = 0;
    }
    piece = (char *)e->blocks[e->n_blocks - 1] + e->block_used;
    e->block_used += PIECE;
out:
    pthread_mutex_unlock(&e->blocks_mu);
    return piece;
}

void *dl__txn_slab_alloc(dl_txn_engine_t *e, slab_t *s, size_t size, uint32_t *size_class)
{
    if (size > SLAB_MAX) {
        *size_class = SLAB_MALLOC;
        return malloc(size);
    }
    uint32_t c = (uint32_t)((size + SLAB_STEP - 1) / SLAB_STEP) - 1;
    *size_class = c;
    void *p = s->free[c];
    if (p != NULL) {
        memcpy(&s->free[c], p, sizeof(void *)); /* the next free piece */
        return p;
    }
    size_t bytes = (size_t)(c + 1) * SLAB_STEP;
    /* A piece that is a whole number of cache lines starts on one (rows: a row read at random
     * then costs as few misses as its size allows). */
    if (bytes % 64 == 0 && s->cur != NULL)
        s->cur = (char *)(((uintptr_t)s->cur + 63) & ~(uintptr_t)63);
    if (s->cur == NULL || s->cur > s->end || (size_t)(s->end - s->cur) < bytes) {
        char *piece = take_piece(e);
        if (piece == NULL)
            return NULL;
        s->cur = piece;
        s->end = piece + PIECE;
    }
    p = s->cur;
    s->cur += bytes;
    return p;
}

void dl__txn_slab_free(slab_t *s, void *p, uint32_t size_class)
{
    if (p == NULL)
        return;
    if (size_class == SLAB_MALLOC) {
        free(p);
        return;
    }
    memcpy(p, &s->free[size_class], sizeof(void *));
    s->free[size_class] = p;
}

void dl__txn_slab_release(dl_txn_engine_t *e)
{
    for (size_t i = 0; i < e->n_blocks; i++)
        free(e->blocks[i]);
    free(e->blocks);
    e->blocks = NULL;
    e->n_blocks = e->cap_blocks = 0;
}

/* Large zeroed allocations come straight from mmap, whose pages are zero already (calloc would
 * be too, but without the advice); a header before the memory remembers the mapping. */
typedef struct mapping_s {
    void *base;
    size_t length;
} mapping_t;

void *dl__txn_zeroed_pages(size_t size)
{
    if (size < BLOCK)
        return calloc(1, size);
    /* A block more than needed, so that the memory can start on a 2 MiB boundary after one
     * page for the header: the kernel backs only aligned 2 MiB ranges with huge pages. */
    size_t page = 4096, length = page + size + BLOCK;
    char *base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)base + page + BLOCK - 1) / BLOCK * BLOCK;
    (void)madvise((void *)start, size, MADV_HUGEPAGE);
    mapping_t *m = (mapping_t *)(start - sizeof(mapping_t));
    m->base = base;
    m->length = length;
    return (void *)start;
}

void dl__txn_free_pages(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (size < BLOCK) {
        free(p);
        return;
    }
    const mapping_t *m = (const mapping_t *)((uintptr_t)p - sizeof(mapping_t));
    munmap(m->base, m->length);
}
