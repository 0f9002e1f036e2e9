/* The settings table behind agent/config.h. */
#include "agent/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/armid.h"
#include "common/log.h"
#include "common/settings.h"
#include "proto/proto.h"

_Static_assert(AGENT_RESOURCE_ID_SIZE == PROTO_RESOURCE_ID_MAX + 1, "hello.identity.resourceId");
_Static_assert(AGENT_INSTANCE_ID_SIZE == PROTO_INSTANCE_ID_MAX + 1, "hello.identity.instanceId");

#define STR(field, name, env, def, help)                                                           \
    SETTINGS_STR(struct agent_config, field, name, env, def, help)
#define FLAG(field, name, help) SETTINGS_FLAG(struct agent_config, field, name, help)

static const struct settings_entry settings[] = {
    STR(server, "server", "NETWATCH_AGENT_SERVER", "http://127.0.0.1:8080",
        "netwatchd to connect to, http://host:port or https://host:port (TLS, verified)"),
    STR(token_file, "token-file", "NETWATCH_AGENT_TOKEN_FILE", "./var/agent-token",
        "file holding this agent's token (from 'netwatchd agent add'); read once at start"),
    STR(state_dir, "state-dir", "NETWATCH_AGENT_STATE_DIR", "./var/agent",
        "directory for the agent's own state: report sequence, held sessions, unanswered "
        "reports (created 0700 if absent; see docs/agent.md)"),
    STR(capture_root, "capture-root", "NETWATCH_AGENT_CAPTURE_ROOT", "/var/captures",
        "capture files are written only under this directory"),
    STR(ca_file, "ca-file", "NETWATCH_AGENT_CA_FILE", "",
        "https: PEM file of the CA(s) to trust instead of the system store (a private CA)"),
    STR(interfaces, "interfaces", "NETWATCH_AGENT_INTERFACES", "",
        "comma-separated interfaces to capture on (\"lo\" included only if named); empty: every "
        "up interface but loopback"),
    STR(resource_id, "resource-id", "NETWATCH_AGENT_RESOURCE_ID", "",
        "the VM resource id this agent runs on, or its scale set's id (with --instance-id); the "
        "server refuses the agent (close 4004) when its token was registered for another "
        "machine; empty: not checked"),
    STR(instance_id, "instance-id", "NETWATCH_AGENT_INSTANCE_ID", "",
        "the scale-set instance this agent runs on (with a scale-set --resource-id); empty for "
        "a VM"),
    STR(user, "user", "NETWATCH_AGENT_USER", "",
        "started as root: the unprivileged user to run as, keeping only CAP_NET_RAW (see "
        "docs/agent.md, Privileges); empty: keep the uid started with"),
    SETTINGS_NUM(struct agent_config, progress_interval, "progress-interval",
                 "NETWATCH_AGENT_PROGRESS_INTERVAL", "10", 0, 3600,
                 "seconds between progress reports of running captures; 0: none"),
    SETTINGS_NUM(struct agent_config, upload_block_size, "upload-block-size",
                 "NETWATCH_AGENT_UPLOAD_BLOCK_SIZE", "4194304", 1024, 104857600,
                 "bytes per block of blob uploads (Put Block); files up to this size go in one "
                 "Put Blob"),
    STR(log_level, "log-level", "NETWATCH_AGENT_LOG_LEVEL", "info", "debug, info, warn or error"),
    FLAG(help, "help", "print this help"),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

enum cp_err agent_parse_server_url(const char *url, char *host, size_t hostsz, unsigned *port,
                                   int *tls, struct cp_error *e)
{
    /* ws:// and wss:// are refused: the server is named by its HTTP URL, as everywhere else. */
    int secure = strncmp(url, "https://", 8) == 0;
    if (!secure && strncmp(url, "http://", 7) != 0)
        return cp_fail(e, CP_EINVAL, "", "server",
                       "server: expected http://host:port or https://host:port, got '%s'", url);
    const char *p = url + (secure ? 8 : 7);
    const char *hend;
    const char *rest;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend)
            return cp_fail(e, CP_EINVAL, "", "server", "server: unclosed '[' in '%s'", url);
        p++;
        rest = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        rest = hend;
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0 || hlen >= hostsz)
        return cp_fail(e, CP_EINVAL, "", "server", "server: no usable host in '%s'", url);
    unsigned long pv = secure ? 443 : 80;
    if (*rest == ':') {
        char *end = NULL;
        errno = 0;
        pv = strtoul(rest + 1, &end, 10);
        if (errno || end == rest + 1 || pv == 0 || pv > 65535)
            return cp_fail(e, CP_EINVAL, "", "server", "server: bad port in '%s'", url);
        rest = end;
    }
    if (*rest && strcmp(rest, "/") != 0)
        return cp_fail(e, CP_EINVAL, "", "server",
                       "server: expected http(s)://host:port with no path, got '%s'", url);
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    *port = (unsigned)pv;
    *tls = secure;
    return CP_OK;
}

/* resource-id and instance-id: the rules proto_decode applies to hello.identity. */
static enum cp_err check_identity(const struct agent_config *c, struct cp_error *e)
{
    struct armid id;
    if (!c->resource_id[0]) {
        if (c->instance_id[0])
            return cp_fail(e, CP_EINVAL, "", "instance-id",
                           "instance-id goes with a scale-set resource-id, and none is set");
        return CP_OK;
    }
    if (armid_parse(c->resource_id, &id, e, "resource-id") != CP_OK)
        return CP_EINVAL;
    if (id.kind != ARMID_VM && id.kind != ARMID_VMSS)
        return cp_fail(e, CP_EINVAL, "", "resource-id",
                       "resource-id must be a virtual machine or a scale set id");
    if (id.kind == ARMID_VM && c->instance_id[0])
        return cp_fail(e, CP_EINVAL, "", "instance-id",
                       "instance-id is only for a scale set; resource-id is a virtual machine");
    if (id.kind == ARMID_VMSS && !c->instance_id[0])
        return cp_fail(e, CP_EINVAL, "", "instance-id",
                       "resource-id is a scale set: give the instance with instance-id");
    if (c->instance_id[0] && !armid_valid_resource_name(c->instance_id))
        return cp_fail(e, CP_EINVAL, "", "instance-id",
                       "instance-id: 1-80 letters, digits, '_', '-' or '.' (a resource name)");
    return CP_OK;
}

enum cp_err agent_config_load(struct agent_config *c, int argc, char **argv, int first,
                              struct cp_error *e)
{
    memset(c, 0, sizeof(*c));
    enum cp_err err = settings_load(settings, NSETTINGS, c, argc, argv, first, e);
    if (err != CP_OK)
        return err;
    if (c->help)
        return CP_OK;
    enum log_level lvl;
    if (log_level_parse(c->log_level, &lvl) != 0)
        return cp_fail(e, CP_EINVAL, "", "log-level",
                       "log-level: expected debug, info, warn or error");
    if (!c->token_file[0] || !c->state_dir[0])
        return cp_fail(e, CP_EINVAL, "", "token-file", "--token-file and --state-dir are required");
    if (c->capture_root[0] != '/')
        return cp_fail(e, CP_EINVAL, "", "capture-root", "capture-root must be an absolute path");
    if (check_identity(c, e) != CP_OK)
        return CP_EINVAL;
    enum cp_err uerr =
        agent_parse_server_url(c->server, c->host, sizeof(c->host), &c->port, &c->tls, e);
    if (uerr != CP_OK)
        return uerr;
    /* Checked here so that a typo stops the agent at start, not at every reconnect. */
    if (c->ca_file[0] && !c->tls)
        return cp_fail(e, CP_EINVAL, "", "ca-file", "ca-file is only used with an https:// server");
    if (c->ca_file[0] && access(c->ca_file, R_OK) != 0)
        return cp_fail(e, CP_EINVAL, "", "ca-file", "ca-file: cannot read %s: %s", c->ca_file,
                       strerror(errno));
    return CP_OK;
}

void agent_config_usage(FILE *out)
{
    fprintf(out, "usage: netwatch-agent [options]\n\noptions (environment variable, default):\n");
    settings_usage(settings, NSETTINGS, out);
}

enum cp_err agent_read_token(const char *path, char *out, size_t out_size, struct cp_error *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return cp_fail(e, CP_EIO, "", "token-file", "cannot open the token file %s: %s", path,
                       strerror(errno));
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int bad = ferror(f);
    fclose(f);
    buf[n] = '\0';
    enum cp_err err = CP_OK;
    char *p = buf;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (bad)
        err = cp_fail(e, CP_EIO, "", "token-file", "cannot read the token file %s", path);
    else if (len == 0)
        err = cp_fail(e, CP_EINVAL, "", "token-file", "the token file %s is empty", path);
    else if (len >= out_size)
        err = cp_fail(e, CP_EINVAL, "", "token-file", "the token in %s is too long", path);
    else {
        memcpy(out, p, len);
        out[len] = '\0';
    }
    memset(buf, 0, sizeof(buf));
    return err;
}
