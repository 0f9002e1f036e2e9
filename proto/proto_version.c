/* Version negotiation: which protocol version a channel speaks. */
#include "proto/proto.h"

int proto_negotiate(const int *offered, size_t n)
{
    int best = -1;
    for (size_t i = 0; offered && i < n; i++) {
        int v = offered[i];
        if (v >= PROTO_VERSION_MIN && v <= PROTO_VERSION && v > best)
            best = v;
    }
    return best;
}
