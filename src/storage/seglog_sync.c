/*
 * Group commit for the segmented log: one fdatasync covers every record appended since the last
 * one, and it runs off the owning thread. prepare and finish run on the owner; run only touches
 * the job, whose fds are dups, so the owner may roll, truncate or close segments meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/seglog.h"
#include "storage/seglog_internal.h"

static void close_job_fds(dl_seglog_sync_t *job)
{
    for (int i = 0; i < job->nfds; i++)
        close(job->fds[i]);
    job->nfds = 0;
}

/* Fills job with dups of the segments that hold unsynced records (by the sealing invariant,
   normally just the active one). 1 if nothing is unsynced. */
static int prepare_job(dl_seglog_t *log, dl_seglog_sync_t *job)
{
    memset(job, 0, sizeof(*job));
    uint64_t last = dl_seglog_last_index(log);
    if (log->synced_index >= last)
        return 1;
    uint64_t from = log->synced_index + 1;
    if (from < dl_seglog_first_index(log))
        from = dl_seglog_first_index(log);
    job->upto = log->synced_index;
    for (size_t i = dl__seglog_find_segment(log, from);
         i < log->nsegs && job->nfds < DL_SEGLOG_SYNC_MAX_FDS; i++) {
        const dl__seglog_segment_t *seg = &log->segs[i];
        if (seg->count == 0)
            continue;
        int fd = dl__seglog_segment_fd(log, i);
        if (fd < 0) {
            close_job_fds(job);
            return fd;
        }
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            int rv = -errno;
            close_job_fds(job);
            return dl__seglog_error(log, rv, "seglog: cannot dup a segment fd: %s", strerror(-rv));
        }
        job->fds[job->nfds++] = fd;
        job->upto = seg->first_index + seg->count - 1;
    }
    job->generation = log->generation;
    return 0;
}

int dl_seglog_sync_prepare(dl_seglog_t *log, uint64_t now_ms, dl_seglog_sync_t *job)
{
    memset(job, 0, sizeof(*job));
    if (log->failed)
        return log->failed;
    if (log->opts.sync_policy == DL_SYNC_NONE)
        return 1;
    if (log->synced_index >= dl_seglog_last_index(log))
        return 1;
    if (log->opts.sync_policy == DL_SYNC_INTERVAL && log->have_synced &&
        now_ms >= log->last_sync_ms &&
        now_ms - log->last_sync_ms < (uint64_t)log->opts.sync_interval_ms)
        return 1;
    int rv = prepare_job(log, job);
    if (rv == 0) {
        log->last_sync_ms = now_ms;
        log->have_synced = 1;
    }
    return rv;
}

void dl_seglog_sync_run(dl_seglog_sync_t *job)
{
    job->rv = 0;
    for (int i = 0; i < job->nfds; i++) {
        if (fdatasync(job->fds[i]) != 0 && job->rv == 0)
            job->rv = -errno;
    }
}

int dl_seglog_sync_finish(dl_seglog_t *log, dl_seglog_sync_t *job)
{
    close_job_fds(job);
    if (job->rv != 0)
        return dl__seglog_fail(log, job->rv, "seglog: fdatasync in %s failed: %s", log->dir,
                               strerror(-job->rv));
    if (!log->failed && job->generation == log->generation && job->upto > log->synced_index)
        log->synced_index = job->upto;
    return 0;
}

int dl_seglog_sync(dl_seglog_t *log)
{
    if (log->failed)
        return log->failed;
    for (;;) {
        dl_seglog_sync_t job;
        int rv = prepare_job(log, &job);
        if (rv != 0)
            return rv == 1 ? 0 : rv;
        dl_seglog_sync_run(&job);
        rv = dl_seglog_sync_finish(log, &job);
        if (rv < 0)
            return rv;
    }
}
