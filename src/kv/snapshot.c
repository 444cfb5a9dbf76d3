/*
 * Log compaction and snapshots of a kv node.
 *
 * Compaction: every --snapshot-entries applied entries the node makes its SQLite state machine
 * durable (an fsync of state.db-wal and state.db on the thread pool: everything committed
 * before it is then on disk, in the WAL or in the database) and drops the log before that
 * index, but for a margin. No copy of the data is made: the state machine is the snapshot, as
 * etcd's backend is.
 *
 * Snapshot files, for followers that need compacted entries: made when the core asks
 * (update.snapshot_needed), by SQLite's online backup from a read transaction of a second
 * connection, on the thread pool. They live in <data-dir>/snapshots as
 * "snap-<index, 20 digits>-<term>.db", named (by rename, then a directory fsync) only once
 * durable; "taking.tmp" and "incoming.tmp" are being made or received. A file is kept while a
 * transfer reads it. A follower installs a received file as its state machine. A restart
 * starts from state.db and deletes every snapshot file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/error.h"
#include "ddialab/fsutil.h"
#include "ddialab/logging.h"
#include "kv/node_internal.h"

/* Entries kept in the log behind a snapshot, for followers that lag a little (as etcd). */
#define SNAP_CATCH_UP_ENTRIES 5000

static void snap_dir(dl_kv_node_t *n, char *buf, size_t len)
{
    snprintf(buf, len, "%s/snapshots", n->data_dir);
}

static void snap_path(dl_kv_node_t *n, uint64_t index, uint64_t term, char *buf, size_t len)
{
    snprintf(buf, len, "%s/snapshots/snap-%020" PRIu64 "-%" PRIu64 ".db", n->data_dir, index, term);
}

static void tmp_path(dl_kv_node_t *n, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/snapshots/%s", n->data_dir, name);
}

const dl_kv_snapfile_t *dl__kv_snap_latest(const dl_kv_node_t *n)
{
    return n->n_snaps ? &n->snaps[n->n_snaps - 1] : NULL;
}

/* Remembers a new latest snapshot file (opened for reading chunks). */
static int add_snapfile(dl_kv_node_t *n, uint64_t index, uint64_t term, uint64_t size)
{
    char path[4200];
    snap_path(n, index, term, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (n->n_snaps == DL_KV_MAX_SNAPFILES) {
        /* Full of files still being sent: the oldest transfer restarts with a newer one. */
        close(n->snaps[0].fd);
        memmove(n->snaps, n->snaps + 1, (n->n_snaps - 1) * sizeof(n->snaps[0]));
        n->n_snaps--;
    }
    n->snaps[n->n_snaps++] = (dl_kv_snapfile_t){index, term, size, fd};
    return 0;
}

/* Deletes snapshot files older than the latest that no transfer is reading. */
void dl__kv_snap_gc(dl_kv_node_t *n)
{
    dl_raft_progress_t p[DL_KV_MAX_NODES];
    size_t count =
        dl_raft_role(n->raft) == DL_RAFT_LEADER ? dl_raft_progress(n->raft, p, DL_KV_MAX_NODES) : 0;
    size_t keep = 0;
    int removed = 0;
    for (size_t i = 0; i < n->n_snaps; i++) {
        dl_kv_snapfile_t *f = &n->snaps[i];
        int used = i + 1 == n->n_snaps;
        for (size_t k = 0; k < count && k < DL_KV_MAX_NODES; k++)
            used |= p[k].snap_index == f->index;
        if (used) {
            n->snaps[keep++] = *f;
            continue;
        }
        char path[4200];
        snap_path(n, f->index, f->term, path, sizeof(path));
        close(f->fd);
        if (unlink(path) != 0 && errno != ENOENT)
            DL_WARN("cannot delete %s: %s", path, strerror(errno));
        removed = 1;
    }
    n->n_snaps = keep;
    if (removed) {
        char dir[4200];
        snap_dir(n, dir, sizeof(dir));
        dl_fsync_dir(dir);
    }
}

int dl__kv_snap_open(dl_kv_node_t *n, char *err, size_t errlen)
{
    char dir[4200];
    snap_dir(n, dir, sizeof(dir));
    int rv = dl_mkdir_p(dir);
    if (rv) {
        snprintf(err, errlen, "cannot create %s: %s", dir, dl_strerror(rv));
        return rv;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", dir, strerror(errno));
        return -errno;
    }
    /* A restart starts from state.db: files from before (complete or not) are of no use. An
     * installation that a crash cut short either restored state.db (then the file is not
     * needed) or did not (then the leader sends it again). */
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "snap-", 5) == 0 || strcmp(de->d_name, "taking.tmp") == 0 ||
            strcmp(de->d_name, "incoming.tmp") == 0) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    dl_fsync_dir(dir);
    return 0;
}

/* ---- Taking a snapshot, on the thread pool -------------------------------------------------- */

static void take_run(uv_work_t *req)
{
    dl_kv_node_t *n = req->data;
    dl_kv_snapjob_t *j = &n->snap_job;
    j->rv = dl_kv_store_snapshot(j->db_path, j->tmp, &j->index, &j->term, &j->size, j->err,
                                 sizeof(j->err));
}

static void take_done(uv_work_t *req, int status)
{
    dl_kv_node_t *n = req->data;
    dl_kv_snapjob_t *j = &n->snap_job;
    (void)status;
    n->snap_busy = 0;
    if (n->stopping) {
        unlink(j->tmp);
        return;
    }
    if (j->rv) {
        DL_WARN("snapshot failed: %s", j->err);
        return;
    }
    if (j->index == 0 || (dl__kv_snap_latest(n) && j->index <= dl__kv_snap_latest(n)->index)) {
        unlink(j->tmp);
        return;
    }
    char path[4200], dir[4200];
    snap_path(n, j->index, j->term, path, sizeof(path));
    snap_dir(n, dir, sizeof(dir));
    int rv = rename(j->tmp, path) == 0 ? dl_fsync_dir(dir) : -errno;
    if (rv == 0)
        rv = add_snapfile(n, j->index, j->term, j->size);
    if (rv == 0)
        rv = dl_raft_snapshot_taken(n->raft, j->index, j->size);
    if (rv) {
        DL_WARN("cannot keep snapshot %s: %s", path, dl_strerror(rv));
        return;
    }
    double seconds = (double)(uv_hrtime() - n->snap_started_ns) / 1e9;
    dl_metric_inc(n->m_snapshots_taken);
    dl_metric_observe(n->m_snapshot_seconds, seconds);
    DL_INFO("snapshot file at index %" PRIu64 " (term %" PRIu64 ", %" PRIu64
            " bytes, %.0f ms) for a follower that needs compacted entries",
            j->index, j->term, j->size, seconds * 1e3);
    dl__kv_snap_gc(n);
}

void dl__kv_snap_make_file(dl_kv_node_t *n)
{
    if (n->snap_busy || n->stopping)
        return;
    const dl_kv_snapfile_t *s = dl__kv_snap_latest(n);
    if (s != NULL && s->index + 1 >= dl_raft_first_index(n->raft))
        return; /* the newest file still reaches the log */
    if (dl__kv_flush(n) != 0)
        return; /* the copy's connection sees committed transactions only */
    dl_kv_snapjob_t *j = &n->snap_job;
    snprintf(j->db_path, sizeof(j->db_path), "%s/state.db", n->data_dir);
    tmp_path(n, "taking.tmp", j->tmp, sizeof(j->tmp));
    n->snap_busy = 1;
    n->snap_started_ns = uv_hrtime();
    n->snap_work.data = n;
    if (uv_queue_work(n->loop, &n->snap_work, take_run, take_done) < 0)
        n->snap_busy = 0;
}

/* ---- Compaction, on the thread pool ------------------------------------------------------- */

/* fsync of both SQLite files: every transaction committed before is then durable, in the WAL
 * or, if a checkpoint has since reset the WAL, in the database (which SQLite syncs when a
 * checkpoint completes). */
static void ckpt_run(uv_work_t *req)
{
    dl_kv_node_t *n = req->data;
    char path[4200];
    n->ckpt_rv = 0;
    const char *suffix[] = {"-wal", ""};
    for (int i = 0; i < 2 && n->ckpt_rv == 0; i++) {
        snprintf(path, sizeof(path), "%s/state.db%s", n->data_dir, suffix[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                n->ckpt_rv = -errno;
            continue;
        }
        if (fsync(fd) != 0)
            n->ckpt_rv = -errno;
        close(fd);
    }
}

static void ckpt_done(uv_work_t *req, int status)
{
    dl_kv_node_t *n = req->data;
    (void)status;
    n->ckpt_busy = 0;
    if (n->stopping)
        return;
    if (n->ckpt_rv) {
        DL_WARN("cannot make the state machine durable for compaction: %s",
                dl_strerror(n->ckpt_rv));
        return;
    }
    /* The log before ckpt_index may go, but for a margin that lagging followers can still
     * catch up from without a snapshot. Whole segments only: the log keeps the rest. */
    uint64_t keep = (uint64_t)n->snapshot_entries < SNAP_CATCH_UP_ENTRIES
                        ? (uint64_t)n->snapshot_entries
                        : SNAP_CATCH_UP_ENTRIES;
    uint64_t before = n->ckpt_index + 1 > keep ? n->ckpt_index + 1 - keep : 1;
    uint64_t first = dl_raft_compact(n->raft, before);
    int rv = dl_seglog_drop_prefix(n->log, first);
    if (rv)
        DL_WARN("cannot drop the log before %" PRIu64 ": %s", first, dl_strerror(rv));
    n->compacted_at = n->ckpt_index;
    dl_metric_inc(n->m_compactions);
    DL_DEBUG("state machine durable through %" PRIu64 "; the log starts at %" PRIu64
             " (file from %" PRIu64 ")",
             n->ckpt_index, first, dl_seglog_first_index(n->log));
}

void dl__kv_snap_maybe_compact(dl_kv_node_t *n)
{
    if (n->snapshot_entries <= 0 || n->ckpt_busy || n->stopping)
        return;
    uint64_t applied = dl_kv_store_applied(n->store);
    if (applied < n->compacted_at + (uint64_t)n->snapshot_entries || dl__kv_flush(n) != 0)
        return;
    n->ckpt_index = applied; /* committed to SQLite now: the fsync covers it */
    n->ckpt_busy = 1;
    n->ckpt_work.data = n;
    if (uv_queue_work(n->loop, &n->ckpt_work, ckpt_run, ckpt_done) < 0)
        n->ckpt_busy = 0;
}

/* ---- Sending ------------------------------------------------------------------------------ */

int dl__kv_snap_read(dl_kv_node_t *n, uint64_t index, uint64_t offset, void *buf, uint32_t len)
{
    for (size_t i = 0; i < n->n_snaps; i++) {
        if (n->snaps[i].index != index)
            continue;
        ssize_t got = dl_pread_all(n->snaps[i].fd, buf, len, offset);
        return got == (ssize_t)len ? 0 : got < 0 ? (int)got : -EIO;
    }
    return -ENOENT;
}

/* ---- Receiving ---------------------------------------------------------------------------- */

int dl__kv_snap_receive(dl_kv_node_t *n, const dl_raft_snapshot_chunk_t *c)
{
    char tmp[4200], path[4200], dir[4200];
    tmp_path(n, "incoming.tmp", tmp, sizeof(tmp));
    snap_dir(n, dir, sizeof(dir));
    if (c->offset == 0) {
        if (n->rcv_fd >= 0)
            close(n->rcv_fd);
        n->rcv_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (n->rcv_fd < 0)
            return -errno;
        DL_INFO("receiving snapshot %" PRIu64 " (term %" PRIu64 ", %" PRIu64
                " bytes) from the leader",
                c->index, c->term, c->size);
    }
    if (n->rcv_fd < 0)
        return -EBADF;
    const uint8_t *p = c->data;
    for (uint32_t done = 0; done < c->len;) {
        ssize_t w = pwrite(n->rcv_fd, p + done, c->len - done, (off_t)(c->offset + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        done += (uint32_t)w;
    }
    if (!c->last)
        return 0;
    /* Complete: durable under its final name, then it becomes the state machine. */
    int rv = fsync(n->rcv_fd) == 0 ? 0 : -errno;
    close(n->rcv_fd);
    n->rcv_fd = -1;
    snap_path(n, c->index, c->term, path, sizeof(path));
    if (rv == 0)
        rv = rename(tmp, path) == 0 ? dl_fsync_dir(dir) : -errno;
    uint64_t index = 0, term = 0;
    if (rv == 0 && (dl_kv_snapshot_info(path, &index, &term) != 0 || index != c->index)) {
        DL_ERROR("the snapshot received from the leader does not hold index %" PRIu64, c->index);
        rv = DL_ECORRUPT;
    }
    if (rv == 0)
        rv = add_snapfile(n, c->index, c->term, c->size);
    if (rv == 0)
        rv = dl_kv_store_restore(n->store, path);
    if (rv)
        return rv;
    /* The log: entries after the snapshot stay if the log agrees with it there. */
    uint64_t last = dl_seglog_last_index(n->log);
    if (c->index <= last && dl_raft_term_at(n->raft, c->index) == c->term)
        rv = dl_seglog_drop_prefix(n->log, c->index + 1);
    else
        rv = dl_seglog_reset(n->log, c->index + 1);
    if (rv)
        return rv;
    dl_metric_inc(n->m_snapshots_installed);
    DL_INFO("installed snapshot %" PRIu64 " (term %" PRIu64 "); the log now starts at %" PRIu64,
            c->index, c->term, dl_seglog_first_index(n->log));
    dl__kv_snap_gc(n);
    return 1;
}

int dl__kv_snap_reset_all(dl_kv_node_t *n)
{
    /* State machine and log first: a crash before the snapshots are gone leaves the old
     * snapshot as the whole state, which the leader corrects again. */
    int rv = dl_kv_store_reset(n->store);
    rv = rv ? rv : dl_seglog_reset(n->log, 1);
    if (rv)
        return rv;
    for (size_t i = 0; i < n->n_snaps; i++) {
        char path[4200];
        snap_path(n, n->snaps[i].index, n->snaps[i].term, path, sizeof(path));
        close(n->snaps[i].fd);
        unlink(path);
    }
    n->n_snaps = 0;
    char dir[4200];
    snap_dir(n, dir, sizeof(dir));
    return dl_fsync_dir(dir);
}

void dl__kv_snap_close(dl_kv_node_t *n)
{
    for (size_t i = 0; i < n->n_snaps; i++)
        close(n->snaps[i].fd);
    n->n_snaps = 0;
    if (n->rcv_fd >= 0)
        close(n->rcv_fd);
    n->rcv_fd = -1;
}
