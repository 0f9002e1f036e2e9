/* Check suite for proto/proto_ws.c: the RFC 6455 accept key (the RFC's own example), header
 * token lists and response headers. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_ws.h"

START_TEST(accept_key_rfc_example)
{
    char out[PROTO_WS_ACCEPT_LEN];
    ck_assert_int_eq(proto_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char longkey[PROTO_WS_KEY_MAX + 2];
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    ck_assert_int_eq(proto_ws_accept_key(longkey, out), -1);
}
END_TEST

START_TEST(token_lists)
{
    ck_assert_int_eq(proto_ws_has_token("keep-alive, Upgrade", "upgrade"), 1);
    ck_assert_int_eq(proto_ws_has_token(" websocket ", "websocket"), 1);
    ck_assert_int_eq(proto_ws_has_token("websockets", "websocket"), 0);
    ck_assert_int_eq(proto_ws_has_token("", "upgrade"), 0);
}
END_TEST

START_TEST(response_headers)
{
    const char *head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket \r\n"
                       "sec-websocket-accept:\tabc=\r\n\r\n";
    char v[16];
    ck_assert_int_eq(proto_ws_response_header(head, "Upgrade", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "websocket");
    ck_assert_int_eq(proto_ws_response_header(head, "Sec-WebSocket-Accept", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "abc=");
    ck_assert_int_eq(proto_ws_response_header(head, "Connection", v, sizeof(v)), -1);
    ck_assert_int_eq(proto_ws_response_header(head, "Upgrade", v, 4), -1); /* too long */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proto_ws");
    TCase *tc = tcase_create("ws");
    tcase_add_test(tc, accept_key_rfc_example);
    tcase_add_test(tc, token_lists);
    tcase_add_test(tc, response_headers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
