/*
 * Snapshots of a kv node: taking them off the loop thread, keeping the files, sending chunks
 * of them to followers, receiving and installing one from the leader, and recovery.
 *
 * Files live in <data-dir>/snapshots: "snap-<index, 20 digits>-<term>.db" is a complete,
 * fsynced SQLite copy of the state machine after applying entries up to index; "taking.tmp"
 * and "incoming.tmp" are snapshots being made or received, which a restart deletes. A
 * snapshot's name appears (by rename, then a directory fsync) only once its file is durable,
 * so the newest snap-*.db is always whole. Older files are kept while a transfer reads them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    uint64_t best = 0, best_term = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t index, term;
        char rest[8];
        if (sscanf(de->d_name, "snap-%20" SCNu64 "-%" SCNu64 ".d%1s", &index, &term, rest) == 3 &&
            index > best) {
            best = index;
            best_term = term;
        }
    }
    closedir(d);
    /* Half-made or half-received snapshots, and snapshots older than the newest, go. */
    d = opendir(dir);
    while (d != NULL && (de = readdir(d)) != NULL) {
        uint64_t index, term;
        char rest[8];
        int is_snap =
            sscanf(de->d_name, "snap-%20" SCNu64 "-%" SCNu64 ".d%1s", &index, &term, rest) == 3;
        if ((is_snap && index != best) || strcmp(de->d_name, "taking.tmp") == 0 ||
            strcmp(de->d_name, "incoming.tmp") == 0) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL)
        closedir(d);
    dl_fsync_dir(dir);
    if (best == 0)
        return 0;
    char path[4200];
    snap_path(n, best, best_term, path, sizeof(path));
    uint64_t index = 0, term = 0;
    struct stat st;
    if (stat(path, &st) != 0 || dl_kv_snapshot_info(path, &index, &term) != 0 || index != best ||
        term != best_term) {
        snprintf(err, errlen, "snapshot %s is damaged (it does not hold applied index %" PRIu64 ")",
                 path, best);
        return DL_ECORRUPT;
    }
    rv = add_snapfile(n, best, best_term, (uint64_t)st.st_size);
    if (rv)
        snprintf(err, errlen, "cannot open %s: %s", path, dl_strerror(rv));
    return rv;
}

int dl__kv_restore_state(dl_kv_node_t *n)
{
    const dl_kv_snapfile_t *s = dl__kv_snap_latest(n);
    if (s == NULL)
        return dl_kv_store_reset(n->store);
    char path[4200];
    snap_path(n, s->index, s->term, path, sizeof(path));
    return dl_kv_store_restore(n->store, path);
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
    /* The log before the snapshot may go, but for a margin that lagging followers can still
     * catch up from without a snapshot. Whole segments only: the log keeps the rest. */
    uint64_t keep = (uint64_t)n->snapshot_entries < SNAP_CATCH_UP_ENTRIES
                        ? (uint64_t)n->snapshot_entries
                        : SNAP_CATCH_UP_ENTRIES;
    uint64_t before = j->index + 1 > keep ? j->index + 1 - keep : 1;
    uint64_t first = dl_raft_compact(n->raft, before);
    rv = dl_seglog_drop_prefix(n->log, first);
    if (rv)
        DL_WARN("cannot drop the log before %" PRIu64 ": %s", first, dl_strerror(rv));
    double seconds = (double)(uv_hrtime() - n->snap_started_ns) / 1e9;
    dl_metric_inc(n->m_snapshots_taken);
    dl_metric_observe(n->m_snapshot_seconds, seconds);
    DL_INFO("snapshot at index %" PRIu64 " (term %" PRIu64 ", %" PRIu64
            " bytes, %.0f ms); the log now starts at %" PRIu64,
            j->index, j->term, j->size, seconds * 1e3, dl_seglog_first_index(n->log));
    dl__kv_snap_gc(n);
}

void dl__kv_snap_maybe_take(dl_kv_node_t *n)
{
    if (n->snapshot_entries <= 0 || n->snap_busy || n->stopping)
        return;
    const dl_kv_snapfile_t *s = dl__kv_snap_latest(n);
    uint64_t since = s ? s->index : 0;
    if (dl_kv_store_applied(n->store) < since + (uint64_t)n->snapshot_entries)
        return;
    dl_kv_snapjob_t *j = &n->snap_job;
    snprintf(j->db_path, sizeof(j->db_path), "%s/state.db", n->data_dir);
    tmp_path(n, "taking.tmp", j->tmp, sizeof(j->tmp));
    n->snap_busy = 1;
    n->snap_started_ns = uv_hrtime();
    n->snap_work.data = n;
    if (uv_queue_work(n->loop, &n->snap_work, take_run, take_done) < 0)
        n->snap_busy = 0;
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
