/*
 * Prometheus metrics: requests by route and status, request latency histogram by route, and
 * captures by state (read from the store at scrape time). Counters are atomics, so recording
 * from many HTTP threads takes no lock.
 */
#ifndef NW_SERVER_METRICS_H
#define NW_SERVER_METRICS_H

#include <stddef.h>

#include "core/core.h"

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* Records one request; route is a route template name ("" when none matched). */
void metrics_observe(struct metrics *m, const char *route, int status, double seconds);
/* Renders the text exposition format; returns a malloc'd string (caller frees) or NULL. */
char *metrics_render(struct metrics *m, struct core *core);

#endif
