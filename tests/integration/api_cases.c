/*
 * api_cases.c - runs tests/api/<case>/ folders against a fresh real netwatchd each.
 *
 *   api_cases NETWATCHD CASE_DIR [CASE_DIR...]
 *
 * The case format is described in tests/api/README.md. In short, a folder holds
 *   request   "METHOD /path?query", header lines, blank line, body
 *   expect    {"status":N, "headers":{...}, "body":<subset>, "absent":[...], "unordered":[...],
 *              "emptyBody":true}
 *   seed      optional requests separated by "---" lines, each must answer 2xx; long-running
 *             ones are polled to their end before the next
 *   seed.sql  optional SQL run with sqlite3 against the db while the server is stopped (after
 *             the seed requests), then the server is started again
 *
 * Besides the expectation, every response (seeds included) must carry x-ms-request-id (a GUID)
 * and x-ms-correlation-request-id; errors must be {"error":{"code","message","details":[]}}
 * in application/json; an ETag header must equal the body's etag. The server must exit 0 on
 * SIGTERM at the end.
 */
#include "tests/integration/harness.h"

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

/* Largest expanded {pad:N} / {spaces:N}: enough for 1 MiB bodies and a bit. */
#define PAD_MAX      (4u * 1024u * 1024u)
#define HEADERS_MAX  32
#define SEEDS_MAX    64
#define OP_TIMEOUT_S 10

struct ctx {
    const char *name;
    struct nw_server srv;
    char wildtoken[NW_TOKEN_MAX];
    char *asyncop;  /* path of the last seed's Azure-AsyncOperation, owned */
    char *location; /* path of the last seed's Location, owned */
    int failed;
};

struct tc_request {
    char *method;
    char *target;
    char *headers[HEADERS_MAX + 1]; /* NULL-terminated */
    size_t nheaders;
    int no_auth;
    char *body; /* NULL when none */
    size_t body_len;
};

static void fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;

    c->failed = 1;
    printf("  FAIL %s: ", c->name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- text helpers ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_fill(struct buf *b, char ch, size_t n)
{
    char chunk[4096];

    memset(chunk, ch, sizeof(chunk));
    while (n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        if (buf_add(b, chunk, k) != 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Current ETag of the resource a request addresses: a GET on the same target. */
static char *current_etag(struct ctx *c, const char *target)
{
    struct nw_response r;
    char *tag = NULL;

    if (nw_server_request(&c->srv, "GET", target, NULL, NULL, &r) == 0) {
        const char *h = nw_response_header(&r, "ETag");
        if (h == NULL && json_is_object(r.json))
            h = json_string_value(json_object_get(r.json, "etag"));
        if (h)
            tag = strdup(h);
    }
    nw_response_free(&r);
    return tag;
}

/*
 * Expands {sub} {othersub} {token} {wildtoken} {asyncop} {location} {etag} {pad:N} {spaces:N}.
 * {etag} needs the request target, so it is expanded by expand_etag() after parsing.
 * Anything else in braces (JSON) is copied as is. Returns an owned string or NULL.
 */
static char *expand(struct ctx *c, const char *text)
{
    struct buf b = {0};
    const char *p = text;

    if (buf_add(&b, "", 0) != 0)
        return NULL;
    while (*p) {
        const char *open = strchr(p, '{');
        if (open == NULL) {
            buf_add(&b, p, strlen(p));
            break;
        }
        buf_add(&b, p, (size_t)(open - p));
        p = open;
        const char *close = strchr(p, '}');
        size_t n = close ? (size_t)(close - p - 1) : 0;
        const char *name = p + 1;
        const char *val = NULL;
        unsigned long count = 0;
        char fillch = 0;

        if (close == NULL || n == 0 || n > 32) {
            buf_add(&b, p, 1);
            p++;
            continue;
        }
        if (n == 3 && strncmp(name, "sub", n) == 0)
            val = c->srv.sub;
        else if (n == 8 && strncmp(name, "othersub", n) == 0)
            val = c->srv.othersub;
        else if (n == 5 && strncmp(name, "token", n) == 0)
            val = c->srv.token;
        else if (n == 9 && strncmp(name, "wildtoken", n) == 0)
            val = c->wildtoken;
        else if (n == 7 && strncmp(name, "asyncop", n) == 0)
            val = c->asyncop ? c->asyncop : "/no-async-operation-in-seed";
        else if (n == 8 && strncmp(name, "location", n) == 0)
            val = c->location ? c->location : "/no-location-in-seed";
        else if (strncmp(name, "pad:", 4) == 0 || strncmp(name, "spaces:", 7) == 0) {
            char *end;
            const char *num = strchr(name, ':') + 1;
            count = strtoul(num, &end, 10);
            if (end == close && count <= PAD_MAX)
                fillch = name[0] == 'p' ? 'a' : ' ';
        }
        if (val != NULL) {
            buf_add(&b, val, strlen(val));
        } else if (fillch) {
            if (buf_fill(&b, fillch, count) != 0) {
                free(b.p);
                return NULL;
            }
        } else {
            /* Not ours (JSON braces): copy the brace alone, a placeholder may follow. */
            buf_add(&b, p, 1);
            p++;
            continue;
        }
        p = close + 1;
    }
    return b.p;
}

static char *expand_etag(struct ctx *c, char *text, const char *target)
{
    char *at = strstr(text, "{etag}");
    char *tag, *out;

    if (at == NULL)
        return text;
    tag = current_etag(c, target);
    if (tag == NULL) {
        fail(c, "{etag}: GET %s gave no ETag", target);
        tag = strdup("W/\"no-etag\"");
        if (tag == NULL)
            return text;
    }
    size_t len = strlen(text) - 6 + strlen(tag) + 1;
    out = malloc(len);
    if (out != NULL)
        snprintf(out, len, "%.*s%s%s", (int)(at - text), text, tag, at + 6);
    free(tag);
    free(text);
    return out;
}

static void tc_request_free(struct tc_request *rq)
{
    free(rq->method);
    free(rq->target);
    for (size_t i = 0; i < rq->nheaders; i++)
        free(rq->headers[i]);
    free(rq->body);
    memset(rq, 0, sizeof(*rq));
}

/* Parses one expanded request text. Returns 0 or -1. */
static int parse_request(struct ctx *c, const char *text, struct tc_request *rq)
{
    const char *p = text, *eol;
    size_t len;

    memset(rq, 0, sizeof(*rq));
    while (*p == '\n' || *p == '\r')
        p++;
    eol = strchr(p, '\n');
    len = eol ? (size_t)(eol - p) : strlen(p);
    if (len > 0 && p[len - 1] == '\r')
        len--;
    const char *sp = memchr(p, ' ', len);
    if (sp == NULL) {
        fail(c, "request line has no target: %.*s", (int)len, p);
        return -1;
    }
    rq->method = strndup(p, (size_t)(sp - p));
    while (*sp == ' ')
        sp++;
    rq->target = strndup(sp, len - (size_t)(sp - p));
    p = eol ? eol + 1 : p + len;
    while (*p) {
        eol = strchr(p, '\n');
        len = eol ? (size_t)(eol - p) : strlen(p);
        size_t l = len;
        if (l > 0 && p[l - 1] == '\r')
            l--;
        if (l == 0) {
            p = eol ? eol + 1 : p + len;
            size_t blen = strlen(p);
            if (blen > 0 && p[blen - 1] == '\n')
                blen--;
            if (blen > 0 && p[blen - 1] == '\r')
                blen--;
            if (blen > 0) {
                rq->body = strndup(p, blen);
                rq->body_len = blen;
            }
            break;
        }
        if (strncasecmp(p, "Authorization:", 14) == 0) {
            const char *v = p + 14;
            while (*v == ' ')
                v++;
            if ((size_t)(p + l - v) == 4 && strncasecmp(v, "none", 4) == 0) {
                rq->no_auth = 1;
                p = eol ? eol + 1 : p + len;
                continue;
            }
        }
        if (rq->nheaders == HEADERS_MAX) {
            fail(c, "too many header lines");
            return -1;
        }
        rq->headers[rq->nheaders++] = strndup(p, l);
        p = eol ? eol + 1 : p + len;
    }
    rq->headers[rq->nheaders] = NULL;
    if (rq->method == NULL || rq->target == NULL || rq->target[0] != '/') {
        fail(c, "bad request line");
        return -1;
    }
    return 0;
}

/* ---- invariants every response must keep ---- */

static void check_common(struct ctx *c, const char *what, const struct nw_response *r)
{
    const char *rid = nw_response_header(r, "x-ms-request-id");
    const char *etag = nw_response_header(r, "ETag");

    if (rid == NULL || !nw_is_guid(rid))
        fail(c, "%s: x-ms-request-id missing or not a GUID (%s)", what, rid ? rid : "absent");
    if (nw_response_header(r, "x-ms-correlation-request-id") == NULL)
        fail(c, "%s: x-ms-correlation-request-id missing", what);
    if (r->status >= 400) {
        const char *ct = nw_response_header(r, "Content-Type");
        json_t *err = json_object_get(r->json, "error");
        if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
            fail(c, "%s: error reply Content-Type is %s", what, ct ? ct : "absent");
        if (!json_is_object(err) || !json_is_string(json_object_get(err, "code")) ||
            !json_is_string(json_object_get(err, "message")) ||
            !json_is_array(json_object_get(err, "details")))
            fail(c,
                 "%s: error body is not {\"error\":{\"code\",\"message\",\"details\":[]}}: %.300s",
                 what, r->body);
    }
    if (etag != NULL && json_is_object(r->json) && json_is_string(json_object_get(r->json, "etag")))
        if (strcmp(etag, json_string_value(json_object_get(r->json, "etag"))) != 0)
            fail(c, "%s: ETag header %s differs from body etag %s", what, etag,
                 json_string_value(json_object_get(r->json, "etag")));
}

/* ---- matching ---- */

static int str_match(const char *want, const char *got, char *why, size_t whysz)
{
    int icase = 0;
    regex_t re;

    if (strcmp(want, "*") == 0)
        return 1;
    if (strncmp(want, "regex:", 6) == 0)
        want += 6;
    else if (strncmp(want, "iregex:", 7) == 0) {
        want += 7;
        icase = 1;
    } else {
        if (strcmp(want, got) == 0)
            return 1;
        snprintf(why, whysz, "want \"%s\", got \"%s\"", want, got);
        return 0;
    }
    if (regcomp(&re, want, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0)) != 0) {
        snprintf(why, whysz, "bad regex in expect: %s", want);
        return 0;
    }
    int ok = regexec(&re, got, 0, NULL, 0) == 0;
    regfree(&re);
    if (!ok)
        snprintf(why, whysz, "\"%s\" does not match /%s/", got, want);
    return ok;
}

static int in_list(json_t *list, const char *path)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), path) == 0)
            return 1;
    }
    return 0;
}

/* Subset match of got against want; path is relative to the body ("" = the body itself).
 * report != 0 prints mismatches; returns 1 on match. */
static int match(struct ctx *c, json_t *want, json_t *got, const char *path, json_t *unordered,
                 int report)
{
    char why[1024] = "";
    char sub[512];
    const char *shown = *path ? path : "(body)";

    if (got == NULL) {
        if (report)
            fail(c, "body %s: missing", shown);
        return 0;
    }
    if (json_is_string(want)) {
        const char *w = json_string_value(want);
        if (strcmp(w, "*") == 0)
            return 1;
        if (!json_is_string(got)) {
            char *t = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
            if (report)
                fail(c, "body %s: want string \"%s\", got %s", shown, w, t ? t : "?");
            free(t);
            return 0;
        }
        if (!str_match(w, json_string_value(got), why, sizeof(why))) {
            if (report)
                fail(c, "body %s: %s", shown, why);
            return 0;
        }
        return 1;
    }
    if (json_is_number(want)) {
        int ok = json_is_number(got);
        if (ok && json_is_integer(want) && json_is_integer(got))
            ok = json_integer_value(want) == json_integer_value(got);
        else if (ok)
            ok = json_number_value(want) == json_number_value(got);
        if (!ok && report) {
            char *t = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
            fail(c, "body %s: want %g, got %s", shown, json_number_value(want), t ? t : "?");
            free(t);
        }
        return ok;
    }
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        int ok = 1;
        if (!json_is_object(got)) {
            if (report)
                fail(c, "body %s: want an object", shown);
            return 0;
        }
        json_object_foreach(want, k, v)
        {
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
            if (!match(c, v, json_object_get(got, k), sub, unordered, report)) {
                ok = 0;
                if (!report)
                    return 0;
            }
        }
        return ok;
    }
    if (json_is_array(want)) {
        size_t n = json_array_size(want);
        int ok = 1;
        if (!json_is_array(got) || json_array_size(got) != n) {
            if (report) {
                char *t = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
                fail(c, "body %s: want an array of %zu, got %.400s", shown, n, t ? t : "?");
                free(t);
            }
            return 0;
        }
        if (in_list(unordered, path)) {
            /* Each wanted element must match a distinct element, in any order. */
            char *used = calloc(n + 1, 1);
            for (size_t i = 0; used && i < n; i++) {
                size_t j;
                for (j = 0; j < n; j++) {
                    snprintf(sub, sizeof(sub), "%s[%zu]", path, j);
                    if (!used[j] && match(c, json_array_get(want, i), json_array_get(got, j), sub,
                                          unordered, 0))
                        break;
                }
                if (j == n) {
                    char *t = json_dumps(json_array_get(want, i), JSON_COMPACT);
                    if (report)
                        fail(c, "body %s: no element matches %s", shown, t ? t : "?");
                    free(t);
                    ok = 0;
                } else {
                    used[j] = 1;
                }
            }
            free(used);
            return ok;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (!match(c, json_array_get(want, i), json_array_get(got, i), sub, unordered,
                       report)) {
                ok = 0;
                if (!report)
                    return 0;
            }
        }
        return ok;
    }
    /* true, false, null */
    if (!json_equal(want, got)) {
        if (report) {
            char *t = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
            char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
            fail(c, "body %s: want %s, got %.400s", shown, w ? w : "?", t ? t : "?");
            free(t);
            free(w);
        }
        return 0;
    }
    return 1;
}

static void check_expect(struct ctx *c, json_t *exp, const struct nw_response *r)
{
    json_t *status = json_object_get(exp, "status");
    json_t *headers = json_object_get(exp, "headers");
    json_t *body = json_object_get(exp, "body");
    json_t *absent = json_object_get(exp, "absent");
    json_t *unordered = json_object_get(exp, "unordered");
    const char *k;
    json_t *v;
    size_t i;

    if (!json_is_integer(status))
        fail(c, "expect has no integer \"status\"");
    else if (json_integer_value(status) != r->status)
        fail(c, "status: want %lld, got %ld", (long long)json_integer_value(status), r->status);
    json_object_foreach(headers, k, v)
    {
        const char *got = nw_response_header(r, k);
        char why[1024];
        if (json_is_null(v)) {
            if (got != NULL)
                fail(c, "header %s: want absent, got \"%s\"", k, got);
        } else if (!json_is_string(v)) {
            fail(c, "expect header %s: value must be a string or null", k);
        } else if (got == NULL) {
            fail(c, "header %s: missing", k);
        } else if (!str_match(json_string_value(v), got, why, sizeof(why))) {
            fail(c, "header %s: %s", k, why);
        }
    }
    if (body != NULL) {
        if (r->json == NULL)
            fail(c, "body: want JSON, got %zu bytes: %.300s", r->body_len, r->body);
        else
            match(c, body, r->json, "", unordered, 1);
    }
    json_array_foreach(absent, i, v)
    {
        const char *p = json_string_value(v);
        if (p && nw_json_get(r->json, p) != NULL)
            fail(c, "body %s: want absent, but it is there", p);
    }
    if (json_is_true(json_object_get(exp, "emptyBody")) && r->body_len != 0)
        fail(c, "body: want empty, got %zu bytes: %.300s", r->body_len, r->body);
}

/* ---- running ---- */

static int send_request(struct ctx *c, const struct tc_request *rq, struct nw_response *out)
{
    struct nw_request req = {0};

    req.method = rq->method;
    req.target = rq->target;
    req.headers = (const char *const *)rq->headers;
    req.body = rq->body;
    req.body_len = rq->body_len;
    req.token = rq->no_auth ? NULL : c->srv.token;
    req.timeout_ms = 30000;
    if (nw_http(c->srv.base_url, &req, out) != 0) {
        fail(c, "%s %s: no response: %s", rq->method, rq->target, out->error);
        return -1;
    }
    return 0;
}

static void set_path(char **slot, const char *url)
{
    const char *t = nw_url_target(url);

    free(*slot);
    *slot = t ? strdup(t) : NULL;
}

static void run_seed(struct ctx *c, const char *text, int idx)
{
    struct tc_request rq;
    struct nw_response r;
    char what[64];
    char *ex = expand(c, text);

    snprintf(what, sizeof(what), "seed #%d", idx);
    if (ex == NULL || parse_request(c, ex, &rq) != 0) {
        free(ex);
        fail(c, "%s: cannot parse", what);
        return;
    }
    free(ex);
    if (send_request(c, &rq, &r) == 0) {
        check_common(c, what, &r);
        if (r.status < 200 || r.status > 299)
            fail(c, "%s %s %s: want 2xx, got %ld: %.400s", what, rq.method, rq.target, r.status,
                 r.body);
        const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
        const char *loc = nw_response_header(&r, "Location");
        if (aao)
            set_path(&c->asyncop, aao);
        if (loc)
            set_path(&c->location, loc);
        /* Let long-running work finish so that the case sees a settled state. */
        if (aao) {
            json_t *st = nw_server_wait_operation(&c->srv, aao, OP_TIMEOUT_S);
            if (st == NULL)
                fail(c, "%s: operation %s did not end within %d s", what, aao, OP_TIMEOUT_S);
            json_decref(st);
        } else if (loc && r.status == 202) {
            struct nw_response lr;
            if (nw_server_wait_location(&c->srv, loc, OP_TIMEOUT_S, &lr) != 0)
                fail(c, "%s: %s still 202 after %d s", what, loc, OP_TIMEOUT_S);
            nw_response_free(&lr);
        }
    }
    nw_response_free(&r);
    tc_request_free(&rq);
}

static void run_seeds(struct ctx *c, char *text)
{
    /* Requests are separated by lines that are exactly "---". */
    char *p = text;
    int idx = 1;

    while (p && *p) {
        char *sep = NULL;
        for (char *q = p; (q = strstr(q, "---")) != NULL; q += 3) {
            int at_bol = q == text || q[-1] == '\n';
            char after = q[3];
            if (at_bol && (after == '\n' || after == '\0' || after == '\r')) {
                sep = q;
                break;
            }
        }
        if (sep)
            *sep = '\0';
        const char *s = p;
        while (*s && isspace((unsigned char)*s))
            s++;
        if (*s)
            run_seed(c, p, idx++);
        if (sep == NULL)
            break;
        p = sep + 3;
        while (*p == '\r')
            p++;
        if (*p == '\n')
            p++;
    }
}

static void apply_sql(struct ctx *c, const char *sql_text)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    char *sql = expand(c, sql_text);

    if (sql == NULL) {
        fail(c, "seed.sql: expand failed");
        return;
    }
    if (sqlite3_open_v2(c->srv.db, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fail(c, "seed.sql: cannot open %s: %s", c->srv.db, db ? sqlite3_errmsg(db) : "?");
    } else {
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
            fail(c, "seed.sql: %s", err ? err : sqlite3_errmsg(db));
    }
    sqlite3_free(err);
    sqlite3_close(db);
    free(sql);
}

static char *read_case_file(const char *dir, const char *name)
{
    char path[NW_PATH_MAX * 2];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return nw_read_file(path, NULL);
}

static int run_case(const char *bin, const char *dir)
{
    struct ctx c;
    const char *slash = strrchr(dir, '/');
    char *req_text = read_case_file(dir, "request");
    char *exp_text = read_case_file(dir, "expect");
    char *seed_text = read_case_file(dir, "seed");
    char *sql_text = read_case_file(dir, "seed.sql");
    char *ex = NULL;
    json_t *exp = NULL;
    struct tc_request rq = {0};
    struct nw_response r = {0};
    json_error_t jerr;
    long long t0 = nw_now_ms();

    memset(&c, 0, sizeof(c));
    while (slash && slash[1] == '\0' && slash > dir)
        slash--;
    c.name = slash ? slash + 1 : dir;
    if (req_text == NULL || exp_text == NULL) {
        fail(&c, "%s needs request and expect files", dir);
        goto done;
    }
    if (nw_server_init(&c.srv, bin) != 0 ||
        nw_server_add_token(&c.srv, "*", c.wildtoken, sizeof(c.wildtoken)) != 0) {
        fail(&c, "cannot prepare netwatchd");
        goto done;
    }
    ex = expand(&c, exp_text);
    exp = ex ? json_loads(ex, 0, &jerr) : NULL;
    if (!json_is_object(exp)) {
        fail(&c, "expect is not a JSON object: line %d: %s", jerr.line, jerr.text);
        goto done;
    }
    free(ex);
    ex = NULL;
    if (nw_server_start(&c.srv) != 0) {
        fail(&c, "netwatchd did not start");
        goto done;
    }
    if (seed_text)
        run_seeds(&c, seed_text);
    if (sql_text) {
        if (nw_server_stop(&c.srv) != 0)
            fail(&c, "netwatchd did not stop cleanly before seed.sql");
        apply_sql(&c, sql_text);
        if (nw_server_start(&c.srv) != 0) {
            fail(&c, "netwatchd did not start after seed.sql");
            goto done;
        }
    }
    if (c.failed) {
        fail(&c, "seeding failed; request not sent");
        goto stop;
    }
    ex = expand(&c, req_text);
    if (ex == NULL || parse_request(&c, ex, &rq) != 0)
        goto stop;
    for (size_t i = 0; i < rq.nheaders; i++)
        if (strstr(rq.headers[i], "{etag}"))
            rq.headers[i] = expand_etag(&c, rq.headers[i], rq.target);
    if (send_request(&c, &rq, &r) == 0) {
        int before = c.failed;
        check_common(&c, "reply", &r);
        check_expect(&c, exp, &r);
        if (c.failed && !before) {
            printf("  request: %s %s\n", rq.method, rq.target);
            for (size_t i = 0; i < rq.nheaders; i++)
                printf("    %s\n", rq.headers[i]);
            if (rq.body)
                printf("    body: %.600s%s\n", rq.body, rq.body_len > 600 ? "..." : "");
            printf("  reply: %ld\n", r.status);
            for (size_t i = 0; i < r.nheaders; i++)
                printf("    %s: %s\n", r.headers[i].name, r.headers[i].value);
            printf("    body: %.3000s\n", r.body);
        }
    }

stop:
    if (nw_server_stop(&c.srv) != 0)
        fail(&c, "netwatchd did not exit 0 on SIGTERM");
done:
    if (c.failed && c.srv.dir[0])
        nw_server_dump_log(&c.srv, 6000);
    printf("%s %s (%lld ms)\n", c.failed ? "FAIL" : "PASS", c.name, nw_now_ms() - t0);
    fflush(stdout);
    nw_response_free(&r);
    tc_request_free(&rq);
    nw_server_cleanup(&c.srv);
    json_decref(exp);
    free(ex);
    free(c.asyncop);
    free(c.location);
    free(req_text);
    free(exp_text);
    free(seed_text);
    free(sql_text);
    return c.failed;
}

int main(int argc, char **argv)
{
    int failed = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s NETWATCHD CASE_DIR [CASE_DIR...]\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    for (int i = 2; i < argc; i++)
        failed += run_case(argv[1], argv[i]);
    if (argc > 3)
        printf("%d of %d cases failed\n", failed, argc - 2);
    return failed ? 1 : 0;
}
