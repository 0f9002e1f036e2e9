/* GUID generation on libuuid (see ids.h). */
#include "core/ids.h"

#include <uuid/uuid.h>

void core_guid(char out[CORE_GUID_LEN])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}
