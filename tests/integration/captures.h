/*
 * captures.h - the packet captures API of one network watcher, as the agent tests drive it
 * against the real netwatchd of harness.h: the watcher, a capture's create, status and stop,
 * and the long-running operations they answer with. Each call that expects an answer checks
 * it (NW_CHECK) and says what came instead.
 *
 * nw is the watcher's path, /subscriptions/<sub>/resourceGroups/rg1/providers/
 * Microsoft.Network/networkWatchers/nw1 (nw_watcher_put writes it).
 *
 * Threading: one thread per server.
 */
#ifndef NW_TESTS_CAPTURES_H
#define NW_TESTS_CAPTURES_H

#include <stddef.h>

#include "tests/integration/harness.h"

/* The watcher path's size, enough for any subscription id. */
#define NW_WATCHER_MAX 300

/* What a create answered: the operation to poll, and its id (the agent's captureId). */
struct nw_created {
    long status;
    char aao[600];
    char op_id[NW_GUID_LEN + 1];
};

/* PUTs watcher nw1 of s->sub (location westus2); its path into nw (NW_WATCHER_MAX bytes).
 * 0 when it answered 2xx. */
int nw_watcher_put(const struct nw_server *s, char *nw);

/* PUT packetCaptures/<name> on VM vm (rg1), UDP to local port `port`, into
 * /var/captures/<name>.cap; extra: more members of properties ("" or
 * `"timeLimitInSeconds":2,`). 0 when it answered 201 with an operation. */
int nw_capture_put(const struct nw_server *s, const char *nw, const char *name, const char *vm,
                   int port, const char *extra, struct nw_created *out);

/* Waits for the operation to end; 1 when it ended with want (and, for a failure, code). Its
 * final body goes to *keep when keep is not NULL (owned). */
int nw_operation_ends(const struct nw_server *s, const char *aao, int timeout_s, const char *want,
                      const char *code, json_t **keep);

/* queryStatus into status, reason and start (captureStartTime; start may be NULL), each sz
 * bytes, "" when absent. Returns the HTTP status (0 when there was no answer). */
long nw_capture_query(const struct nw_server *s, const char *nw, const char *name, char *status,
                      char *reason, char *start, size_t sz);

/* 1 when queryStatus says status (and stopReason reason, when reason is not NULL). */
int nw_capture_is(const struct nw_server *s, const char *nw, const char *name, const char *status,
                  const char *reason);

/* POST stop: 0 when it answered 202 with a Location, which goes into loc, and its
 * Azure-AsyncOperation into aao (when not NULL). */
int nw_capture_stop(const struct nw_server *s, const char *nw, const char *name, char *loc,
                    size_t locsz, char *aao, size_t aaosz);

/* Waits for a stop's Location to give its final answer; 1 when that is 200 null. */
int nw_stop_done(const struct nw_server *s, const char *loc, int timeout_s);

#endif
