/*
 * The api-version query parameter: its ARM form and the Microsoft.Network versions netwatchd
 * serves. The supported list is every stable Microsoft.Network api-version from 2016-09-01
 * through 2026-03-01 (docs/api.md); apiversion.c says where the list comes from.
 *
 * libc only; the list is constant data; every function is thread-safe.
 */
#ifndef NW_COMMON_APIVERSION_H
#define NW_COMMON_APIVERSION_H

/*
 * 1 when s has the ARM form YYYY-MM-DD (month 01-12, day 01-31), optionally followed by
 * "-preview", "-alpha", "-beta", "-rc" or "-privatepreview" (suffix matched ASCII
 * case-insensitively); 0 otherwise, including NULL. Use it to choose between
 * InvalidApiVersionParameter (not well formed) and NoRegisteredProviderFound (not supported).
 */
int apiversion_well_formed(const char *s);

/* 1 when s is exactly (case-sensitively) one of the supported stable versions; 0 otherwise. */
int apiversion_supported(const char *s);

/* The supported versions, newest first, joined with ", ". Static storage; never NULL. */
const char *apiversion_list(void);

#endif
