/*
 * Structured logging: one `key=value` line per event on stderr.
 *
 * The level is checked before anything is formatted (the macros test log_level first), so a
 * debug line costs a comparison when debug is off. Thread-safe: each line is one write(2).
 * log_warn() appends strerror(errno); log_warnx() does not (OpenBSD's split).
 * Never log tokens, request bodies or payloads.
 */
#ifndef NW_COMMON_LOG_H
#define NW_COMMON_LOG_H

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

extern enum log_level log_level;

/* Parses "debug", "info", "warn" or "error". Returns 0 on success, -1 otherwise. */
int log_level_parse(const char *s, enum log_level *out);

void log_emit(enum log_level lvl, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_level <= LOG_LEVEL_DEBUG)                                                          \
            log_emit(LOG_LEVEL_DEBUG, 0, __VA_ARGS__);                                             \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_level <= LOG_LEVEL_INFO)                                                           \
            log_emit(LOG_LEVEL_INFO, 0, __VA_ARGS__);                                              \
    } while (0)
#define log_warnx(...)                                                                             \
    do {                                                                                           \
        if (log_level <= LOG_LEVEL_WARN)                                                           \
            log_emit(LOG_LEVEL_WARN, 0, __VA_ARGS__);                                              \
    } while (0)
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (log_level <= LOG_LEVEL_WARN)                                                           \
            log_emit(LOG_LEVEL_WARN, 1, __VA_ARGS__);                                              \
    } while (0)
#define log_error(...) log_emit(LOG_LEVEL_ERROR, 0, __VA_ARGS__)

#endif
