/* Fresh identifiers: GUIDs for etags, operation ids and request ids. Thread-safe. */
#ifndef NW_CORE_IDS_H
#define NW_CORE_IDS_H

#define CORE_GUID_LEN 37 /* 36 characters and the terminator */

/* Writes a random (version 4) GUID in lower case into out. */
void core_guid(char out[CORE_GUID_LEN]);

#endif
