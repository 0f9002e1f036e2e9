/*
 * upload.h - the agent's blob uploader: one finished capture file to one Azure Blob Storage
 * block blob, through a SAS URL the server signed for that blob (docs/storage.md). The agent
 * holds no account key; the SAS grants create+write on that one blob only.
 *
 * How a file goes up (Azure Blob REST API, x-ms-version UPLOAD_API_VERSION, over libcurl):
 *  - a file of at most single_put_max bytes: one Put Blob with the whole body;
 *  - a larger one: Put Block per block_size slice (the last may be shorter), then one Put
 *    Block List naming every block in order. Block ids are base64 of "nwblk-NNNNNN" (the block
 *    index, six digits), so all ids of a blob have the same length, as Azure requires.
 *  - every body carries Content-MD5 (MD5 of those bytes, base64, by OpenSSL): the service
 *    refuses a block that arrived altered.
 *
 * Retries: a request that fails on the network (connect, reset, timeout) or is answered 408,
 * 429 or 5xx is sent again after an exponential backoff with jitter (backoff_initial_ms
 * doubling up to backoff_max_ms, each wait drawn between half and all of it), at most
 * max_attempts times and for at most retry_budget_ms per request. 403 (the SAS is refused:
 * expired, for another blob, wrong signature) and other 4xx are not retried.
 *
 * Resumption: with a journal_path, each block the service accepted is appended to that file
 * (fdatasync'd) before the next is sent. A later upload_file of the same file to the same
 * blob (same size, block size and blob URL; the SAS may be a new one) skips the blocks the
 * journal lists, so an agent restarted mid-upload does not send them again. The journal is
 * the agent's own record because the service's (Get Block List) needs read permission, which
 * the SAS deliberately lacks. If the service no longer has a journaled block (uncommitted
 * blocks expire after a week), Put Block List answers 400 InvalidBlockList: then every block
 * is sent again, once, and committed. The journal is removed once the blob is committed.
 *
 * The SAS URL is a secret: never logged, never put in an error message (those name the blob
 * URL without its query).
 *
 * Threading: upload_file blocks its caller (run it on a worker thread) and shares nothing
 * between calls; several uploads may run at once. curl_global_init must have been called once
 * before any thread starts (the agent's main does it).
 */
#ifndef NW_AGENT_UPLOAD_H
#define NW_AGENT_UPLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The REST API version the agent speaks (the block list XML, the headers it sends). */
#define UPLOAD_API_VERSION "2022-11-02"

#define UPLOAD_BLOCK_SIZE_DEFAULT (4u * 1024u * 1024u)   /* 4 MiB: 50,000 blocks = 195 GiB */
#define UPLOAD_BLOCK_SIZE_MIN     1024u                  /* tests use small blocks */
#define UPLOAD_BLOCK_SIZE_MAX     (100u * 1024u * 1024u) /* the buffer is held in memory */
#define UPLOAD_BLOCKS_MAX         50000u                 /* Azure's limit per blob */
#define UPLOAD_URL_MAX            8192                   /* a SAS URL longer than this is refused */

/* Called after each block (and once at the end) with the bytes the service now holds for this
 * blob (blocks skipped on resume count) and the file's size. From upload_file's thread. */
typedef void (*upload_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* Every field optional: 0 / NULL takes the default named. */
struct upload_opts {
    size_t block_size;        /* UPLOAD_BLOCK_SIZE_DEFAULT; MIN..MAX */
    size_t single_put_max;    /* block_size: files up to this go as one Put Blob */
    int max_attempts;         /* 8 sends of one request at most */
    long backoff_initial_ms;  /* 500 */
    long backoff_max_ms;      /* 30,000 */
    long retry_budget_ms;     /* 300,000: no new attempt of a request after this long */
    long connect_timeout_ms;  /* 10,000 */
    long stall_timeout_s;     /* 60: a request moving under 1 KiB/s this long is a failure */
    const char *ca_file;      /* PEM bundle for https; NULL: the system's */
    const char *journal_path; /* NULL: no resumption (borrowed) */
    upload_progress_fn progress;
    void *progress_arg;
    /* When *stop becomes non-zero (another thread, e.g. at agent shutdown) the upload ends
     * (CP_EBUSY) before its next request or within 100 ms of a backoff wait, the journal
     * kept, so a later call resumes. A request under way is finished first. NULL: never. */
    const atomic_int *stop;
};

/* What one upload_file call did (for progress reports and tests). */
struct upload_stats {
    uint64_t size;           /* bytes of the file */
    uint64_t bytes_sent;     /* body bytes of requests the service accepted */
    uint32_t blocks;         /* blocks of the blob; 0 for a single Put Blob */
    uint32_t blocks_put;     /* Put Block requests accepted in this call */
    uint32_t blocks_skipped; /* blocks the journal said were already staged */
    uint32_t requests;       /* HTTP requests sent, retries included */
    uint32_t retries;        /* of those, sends after a failure */
    int restaged;            /* 1 when the service had lost journaled blocks */
};

/*
 * Uploads the file at path to the blob of sas_url ("https://acct.blob.core.windows.net/
 * container/blob?sv=...&sig=..."; borrowed). opts may be NULL (all defaults); stats may be
 * NULL. On CP_OK the blob holds exactly the file's bytes and the journal is gone.
 * Errors (err->code "StorageFailed", err->message says what and why, naming the blob URL
 * without the SAS):
 *   CP_EINVAL     bad URL or options, or the file cannot be opened or read
 *   CP_ETOOBIG    the file needs more than UPLOAD_BLOCKS_MAX blocks of block_size
 *   CP_EFORBIDDEN the service refused the SAS (403): expired, another blob's, bad signature
 *   CP_EIO        retries exhausted (the last failure is in the message), or another 4xx
 *   CP_EBUSY      *opts->stop was set; the journal is kept
 *   CP_ENOMEM
 * On failure the local file is untouched and the journal keeps what was staged.
 */
enum cp_err upload_file(const char *path, const char *sas_url, const struct upload_opts *opts,
                        struct upload_stats *stats, struct cp_error *err) CP_MUST_USE;

#endif
