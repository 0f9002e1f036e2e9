/*
 * blob_fixture.h - what the storage tests do to Azurite besides the code under test: create a
 * container (with an account SAS), make SAS URLs for a blob (storage/sas.c, signed with the
 * development key) and download a blob to compare it with what was uploaded.
 *
 * Threading: like the harness, any thread once nw_harness_init has run.
 */
#ifndef NW_TESTS_BLOB_FIXTURE_H
#define NW_TESTS_BLOB_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "tests/storage/azurite.h"

/* The container Network Watcher writes captures to. */
#define NW_BLOB_CONTAINER "network-watcher-logs"

/* Creates the container (201, or 409 when it is there). Returns 0 or -1 (message printed). */
int nw_blob_container_create(const struct nw_azurite *a, const char *container);

/* SAS URL for blob with permissions perms valid from now - 5 min to now + ttl_s (a negative
 * ttl_s gives an expired one). Owned by the caller (free()); NULL on error (message printed). */
char *nw_blob_sas_url(const struct nw_azurite *a, const char *container, const char *blob,
                      const char *perms, long ttl_s);

/* GETs blob with a read SAS. *body owned by the caller. Returns the HTTP status (0: no reply). */
long nw_blob_download(const struct nw_azurite *a, const char *container, const char *blob,
                      char **body, size_t *len);

/* Lower-case hex SHA-256 of data into out (65 bytes). */
void nw_sha256_hex(const void *data, size_t len, char out[65]);

#endif
