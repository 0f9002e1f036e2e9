/* The OpenSSL client behind agent/tls.h. */
#include "agent/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct agent_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct agent_tls_conn {
    SSL *ssl;
    /* After SSL_ERROR_SYSCALL or SSL_ERROR_SSL OpenSSL forbids SSL_shutdown. */
    int broken;
    int established;
};

enum cp_err agent_tls_ctx_new(const char *ca_file, struct agent_tls_ctx **out, struct cp_error *e)
{
    struct agent_tls_ctx *t = calloc(1, sizeof(*t));
    if (!t)
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    enum cp_err err = CP_OK;
    ERR_clear_error();
    t->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ssl_ctx) {
        err = cp_fail(e, CP_ENOMEM, "", "", "cannot make a TLS context");
        goto cleanup;
    }
    if (SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION) != 1) {
        err = cp_fail(e, CP_EINVAL, "", "", "cannot require TLS 1.2");
        goto cleanup;
    }
    /* Verification failures abort the handshake, so nothing is ever sent to an unverified peer. */
    SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
    /* wslay retries a blocked write with the same bytes but may hand over a different pointer
     * (it masks into a stack buffer), and takes partial writes. */
    SSL_CTX_set_mode(t->ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ca_file && ca_file[0]) {
        if (SSL_CTX_load_verify_locations(t->ssl_ctx, ca_file, NULL) != 1) {
            char detail[160];
            ERR_error_string_n(ERR_peek_last_error(), detail, sizeof(detail));
            err = cp_fail(e, CP_EINVAL, "", "ca-file", "ca-file: cannot load %s (%s)", ca_file,
                          detail);
            goto cleanup;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ssl_ctx) != 1) {
        err = cp_fail(e, CP_EINVAL, "", "ca-file", "cannot load the system's trusted CAs");
        goto cleanup;
    }
cleanup:
    ERR_clear_error();
    if (err != CP_OK) {
        agent_tls_ctx_free(t);
        return err;
    }
    *out = t;
    return CP_OK;
}

void agent_tls_ctx_free(struct agent_tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ssl_ctx);
    free(t);
}

enum cp_err agent_tls_conn_new(struct agent_tls_ctx *t, int fd, const char *host,
                               struct agent_tls_conn **out)
{
    struct agent_tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return CP_ENOMEM;
    enum cp_err err = CP_ENOMEM;
    ERR_clear_error();
    c->ssl = SSL_new(t->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1)
        goto cleanup;
    /* An address is checked against the certificate's IP SANs and never sent as SNI (RFC 6066
     * allows only host names there); a name is both. */
    unsigned char bin[sizeof(struct in6_addr)];
    int is_ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    err = CP_EINVAL;
    if (is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
            goto cleanup;
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1)
            goto cleanup;
    }
    SSL_set_connect_state(c->ssl);
    err = CP_OK;
cleanup:
    ERR_clear_error();
    if (err != CP_OK) {
        agent_tls_conn_free(c);
        return err;
    }
    *out = c;
    return CP_OK;
}

void agent_tls_conn_free(struct agent_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    free(c);
}

/* Sorts out a failed SSL_* call: AGENT_TLS_AGAIN with *wait, 0 for a clean close, or
 * AGENT_TLS_ERROR with why. saved_errno is errno right after the call. */
static int classify(struct agent_tls_conn *c, int ret, int saved_errno, short *wait, char *why)
{
    int code = SSL_get_error(c->ssl, ret);
    switch (code) {
    case SSL_ERROR_WANT_READ:
        *wait = POLLIN;
        return AGENT_TLS_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wait = POLLOUT;
        return AGENT_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        c->broken = 1;
        if (saved_errno)
            snprintf(why, AGENT_TLS_WHY, "%s", strerror(saved_errno));
        else
            snprintf(why, AGENT_TLS_WHY, "the server closed the connection");
        break;
    default: {
        c->broken = 1;
        unsigned long l = ERR_peek_last_error();
        if (ERR_GET_REASON(l) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            snprintf(why, AGENT_TLS_WHY, "the server closed the connection without close_notify");
        else if (l)
            ERR_error_string_n(l, why, AGENT_TLS_WHY);
        else
            snprintf(why, AGENT_TLS_WHY, "TLS error %d", code);
        break;
    }
    }
    ERR_clear_error();
    return AGENT_TLS_ERROR;
}

int agent_tls_handshake(struct agent_tls_conn *c, short *wait, char *why)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    int saved = errno;
    if (r != 1) {
        /* The verification result says more than "certificate verify failed". */
        long v = SSL_get_verify_result(c->ssl);
        int out = classify(c, r, saved, wait, why);
        if (out == AGENT_TLS_ERROR && v != X509_V_OK)
            snprintf(why, AGENT_TLS_WHY, "certificate not accepted: %s",
                     X509_verify_cert_error_string(v));
        else if (out == 0)
            snprintf(why, AGENT_TLS_WHY, "the server closed during the TLS handshake");
        return out == AGENT_TLS_AGAIN ? out : AGENT_TLS_ERROR;
    }
    /* SSL_VERIFY_PEER already failed the handshake otherwise; checked again because sending
     * the token depends on it. */
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    int presented = peer != NULL;
    X509_free(peer);
    long v = SSL_get_verify_result(c->ssl);
    if (!presented || v != X509_V_OK) {
        c->broken = 1;
        snprintf(why, AGENT_TLS_WHY, "certificate not accepted: %s",
                 presented ? X509_verify_cert_error_string(v) : "none presented");
        return AGENT_TLS_ERROR;
    }
    c->established = 1;
    return 0;
}

ssize_t agent_tls_read(struct agent_tls_conn *c, void *buf, size_t len, short *wait, char *why)
{
    if (len > INT_MAX)
        len = INT_MAX;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(c->ssl, buf, (int)len);
    if (r > 0)
        return r;
    return classify(c, r, errno, wait, why);
}

ssize_t agent_tls_write(struct agent_tls_conn *c, const void *buf, size_t len, short *wait,
                        char *why)
{
    if (len > INT_MAX)
        len = INT_MAX;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(c->ssl, buf, (int)len);
    if (r > 0)
        return r;
    int out = classify(c, r, errno, wait, why);
    if (out == 0) {
        /* close_notify seen while writing: nothing more goes out. */
        snprintf(why, AGENT_TLS_WHY, "the server closed the connection");
        return AGENT_TLS_ERROR;
    }
    return out;
}

void agent_tls_shutdown(struct agent_tls_conn *c)
{
    if (!c || c->broken || !c->established)
        return;
    ERR_clear_error();
    /* One non-blocking attempt: the close frame has been exchanged already, so the peer's
     * close_notify is not worth waiting for. */
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}
