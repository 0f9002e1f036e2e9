/*
 * The api-version form check and the supported-version table behind apiversion.h.
 *
 * Where the list comes from: the stable version folders of Microsoft.Network in
 * Azure/azure-rest-api-specs, read from the "### Tag: package-YYYY-MM[-DD]" sections of
 * specification/network/resource-manager/Microsoft.Network/Network/readme.md (whose default tag
 * was package-2025-09-01 at the revision read), plus 2026-01-01 and 2026-03-01, whose
 * .../Network/stable/<date>/networkWatcher.json files exist in the spec repository. Every one of
 * these versions has a networkWatcher.json, i.e. serves networkWatchers and packetCaptures.
 * Versions before 2016-09-01 (2015-06-15, 2016-03-30, 2016-06-01) predate Network Watcher and are
 * left out on purpose.
 *
 * The table and the joined string are generated from one X-macro so they cannot drift apart.
 */
#include "common/apiversion.h"

#include <stddef.h>
#include <string.h>

/* Newest first, as ARM lists versions in its error messages. */
#define APIVERSION_TABLE(X)                                                                        \
    X("2026-03-01")                                                                                \
    X("2026-01-01")                                                                                \
    X("2025-09-01")                                                                                \
    X("2025-07-01")                                                                                \
    X("2025-05-01")                                                                                \
    X("2025-03-01")                                                                                \
    X("2025-01-01")                                                                                \
    X("2024-10-01")                                                                                \
    X("2024-07-01")                                                                                \
    X("2024-05-01")                                                                                \
    X("2024-03-01")                                                                                \
    X("2024-01-01")                                                                                \
    X("2023-11-01")                                                                                \
    X("2023-09-01")                                                                                \
    X("2023-06-01")                                                                                \
    X("2023-05-01")                                                                                \
    X("2023-04-01")                                                                                \
    X("2023-02-01")                                                                                \
    X("2022-11-01")                                                                                \
    X("2022-09-01")                                                                                \
    X("2022-07-01")                                                                                \
    X("2022-05-01")                                                                                \
    X("2022-01-01")                                                                                \
    X("2021-08-01")                                                                                \
    X("2021-05-01")                                                                                \
    X("2021-03-01")                                                                                \
    X("2021-02-01")                                                                                \
    X("2020-11-01")                                                                                \
    X("2020-08-01")                                                                                \
    X("2020-07-01")                                                                                \
    X("2020-06-01")                                                                                \
    X("2020-05-01")                                                                                \
    X("2020-04-01")                                                                                \
    X("2020-03-01")                                                                                \
    X("2019-12-01")                                                                                \
    X("2019-11-01")                                                                                \
    X("2019-09-01")                                                                                \
    X("2019-08-01")                                                                                \
    X("2019-07-01")                                                                                \
    X("2019-06-01")                                                                                \
    X("2019-04-01")                                                                                \
    X("2019-02-01")                                                                                \
    X("2018-12-01")                                                                                \
    X("2018-11-01")                                                                                \
    X("2018-10-01")                                                                                \
    X("2018-08-01")                                                                                \
    X("2018-07-01")                                                                                \
    X("2018-06-01")                                                                                \
    X("2018-04-01")                                                                                \
    X("2018-02-01")                                                                                \
    X("2018-01-01")                                                                                \
    X("2017-11-01")                                                                                \
    X("2017-10-01")                                                                                \
    X("2017-09-01")                                                                                \
    X("2017-08-01")                                                                                \
    X("2017-06-01")                                                                                \
    X("2017-03-01")                                                                                \
    X("2016-12-01")                                                                                \
    X("2016-09-01")

#define APIVERSION_ITEM(v)   v,
#define APIVERSION_JOINED(v) ", " v

static const char *const apiversion_table[] = {APIVERSION_TABLE(APIVERSION_ITEM)};

/* ", 2026-03-01, 2026-01-01, ..."; apiversion_list() skips the leading ", ". */
static const char apiversion_joined[] = APIVERSION_TABLE(APIVERSION_JOINED);

#define APIVERSION_DATE_LEN 10 /* YYYY-MM-DD */
#define APIVERSION_MAX_LEN  32 /* longer than any well-formed value */

static int av_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int av_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        if (ca != *b)
            return 0;
        if (ca == '\0')
            return 1;
    }
}

int apiversion_well_formed(const char *s)
{
    static const char *const suffixes[] = {"-preview", "-alpha", "-beta", "-rc", "-privatepreview"};
    if (!s)
        return 0;
    size_t len = strnlen(s, APIVERSION_MAX_LEN + 1);
    if (len < APIVERSION_DATE_LEN || len > APIVERSION_MAX_LEN)
        return 0;
    int year = 0;
    int month = 0;
    int day = 0;
    if (av_digits(s, 4, &year) != 0 || s[4] != '-' || av_digits(s + 5, 2, &month) != 0 ||
        s[7] != '-' || av_digits(s + 8, 2, &day) != 0)
        return 0;
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return 0;
    if (len == APIVERSION_DATE_LEN)
        return 1;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (av_ieq(s + APIVERSION_DATE_LEN, suffixes[i]))
            return 1;
    }
    return 0;
}

int apiversion_supported(const char *s)
{
    if (!s || strnlen(s, APIVERSION_DATE_LEN + 1) != APIVERSION_DATE_LEN)
        return 0;
    for (size_t i = 0; i < sizeof(apiversion_table) / sizeof(apiversion_table[0]); i++) {
        if (memcmp(s, apiversion_table[i], APIVERSION_DATE_LEN) == 0)
            return 1;
    }
    return 0;
}

const char *apiversion_list(void)
{
    return apiversion_joined + 2;
}
