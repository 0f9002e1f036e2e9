// The official Azure SDK for JavaScript (@azure/arm-network's NetworkManagementClient, pinned in
// package.json) driven against a running netwatchd: every operation that works without agents.
//
//   NETWATCH_URL=https://127.0.0.1:PORT NETWATCH_TOKEN=... NETWATCH_SUB=<subscription GUID> \
//       node --test tests/node/sdk-test.mjs
// or, starting a throw-away server: tests/node/run-sdk-test.sh build/server/netwatchd
//
// The client is used unmodified but for the endpoint and the credential, over HTTPS (the
// SDK's bearer-token policy, rightly, sends tokens only over TLS): run-sdk-test.sh starts
// netwatchd with a throw-away certificate that NODE_EXTRA_CA_CERTS makes trusted. An observer
// policy records each reply for the contract check; it changes nothing.
//
// NETWATCH_REPLIES=FILE also appends every HTTP reply (method, path, status, headers, body) to
// FILE as JSON lines, for validate-replies.mjs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, it } from 'node:test';
import { NetworkManagementClient } from '@azure/arm-network';

const BASE = (process.env.NETWATCH_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.NETWATCH_TOKEN ?? '';
const SUB = process.env.NETWATCH_SUB ?? '';
const REPLIES = process.env.NETWATCH_REPLIES ?? '';

// Each long-running operation must be done within this: netwatchd's monitors answer
// Retry-After: 1, and the SDK's pollers obey it (Azure's usual 10 s would blow this budget).
const LRO_BUDGET_MS = 3000;
const API_VERSION = '2024-05-01'; // what @azure/arm-network 33.5.0 sends; used for plain fetches

// Names unique to this run, so that a server with other data still passes. The region is new
// too, so the one-watcher-per-region rule only sees this run's watchers.
const RUN = randomUUID().replace(/-/g, '').slice(0, 10);
const RG = `nwsdk-rg-${RUN}`;
const REGION = `sdktest${RUN}`;
const NW = `nwsdk-${RUN}`;
const NW2 = `nwsdk2-${RUN}`;
const PC = `pc-${RUN}`;
const PC2 = `pc2-${RUN}`;
const NW_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkWatchers/${NW}`;
const VM_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/vm-${RUN}`;

// Every Retry-After netwatchd sent, as [method, url, status, value].
const retryAfters = [];

function record(method, url, status, headers, text) {
    const ra = Object.entries(headers).find(([k]) => k.toLowerCase() === 'retry-after');
    if (ra) retryAfters.push([method, url, status, ra[1]]);
    if (!REPLIES) return;
    let body = null;
    if (text) {
        try {
            body = JSON.parse(text);
        } catch {
            body = null;
        }
    }
    const path = new URL(url).pathname;
    appendFileSync(REPLIES, JSON.stringify({ method, path, status, headers, body }) + '\n');
}

// A TokenCredential that hands out the netwatchd token.
const credential = {
    async getToken() {
        return { token: TOKEN, expiresOnTimestamp: Date.now() + 3600 * 1000 };
    },
};

// Records each reply the SDK receives (after retries), for validate-replies.mjs.
const replyRecorder = {
    name: 'netwatchReplyRecorder',
    async sendRequest(request, next) {
        const response = await next(request);
        record(request.method, request.url, response.status, response.headers.toJSON(), response.bodyAsText);
        return response;
    },
};

function makeClient() {
    return new NetworkManagementClient(credential, SUB, {
        endpoint: BASE,
        credentialScopes: [`${BASE}/.default`],
        additionalPolicies: [{ policy: replyRecorder, position: 'perRetry' }],
    });
}

// Plain requests for what the SDK cannot send (a wrong api-version, no token).
async function http(method, path, { query = `api-version=${API_VERSION}`, token = TOKEN, headers = {} } = {}) {
    const url = `${BASE}${path}${query === null ? '' : `?${query}`}`;
    const h = { ...headers };
    if (token !== null) h.Authorization = `Bearer ${token}`;
    const res = await fetch(url, { method, headers: h, signal: AbortSignal.timeout(10000) });
    const text = await res.text();
    record(method, url, res.status, Object.fromEntries(res.headers), text);
    let body = null;
    try {
        body = text ? JSON.parse(text) : null;
    } catch {
        body = text;
    }
    return { status: res.status, headers: res.headers, body };
}

async function timed(what, fn) {
    const t0 = performance.now();
    try {
        return await fn();
    } finally {
        const ms = performance.now() - t0;
        assert.ok(ms < LRO_BUDGET_MS, `${what} took ${Math.round(ms)} ms, over the ${LRO_BUDGET_MS} ms budget (Retry-After too long?)`);
    }
}

// Asserts an SDK call fails with an HTTP error of this status and ARM error code; returns the
// parsed error body.
async function rejectsWith(promise, statusCode, code) {
    let body;
    await assert.rejects(promise, (e) => {
        assert.equal(e.statusCode, statusCode, `status of: ${e.message}`);
        assert.equal(e.code, code, `code of: ${e.message}`);
        body = e.response?.bodyAsText ? JSON.parse(e.response.bodyAsText) : undefined;
        return true;
    });
    return body;
}

function assertArmError(res, status, code) {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body?.error?.code, code, JSON.stringify(res.body));
    assert.equal(typeof res.body.error.message, 'string');
    assert.ok(Array.isArray(res.body.error.details), 'error.details must be an array');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.ok(res.headers.get('x-ms-request-id'), 'x-ms-request-id missing');
}

async function collect(iter) {
    const out = [];
    for await (const x of iter) out.push(x);
    return out;
}

describe('netwatchd through @azure/arm-network', { concurrency: 1 }, () => {
    let client;
    let lastEtag;
    let unreachable = new Error('the /healthz check has not run');

    // Every test but the first fails at once, with the same reason, when the server is not there
    // (rather than waiting out the SDK's connection retries).
    function requireServer() {
        if (unreachable) throw unreachable;
    }

    before(() => {
        client = makeClient();
    });

    beforeEach(() => {
        assert.ok(BASE && TOKEN && SUB, 'set NETWATCH_URL, NETWATCH_TOKEN and NETWATCH_SUB');
    });

    after(async () => {
        // Best effort: leave nothing behind on a shared server when a test failed half-way.
        if (unreachable) return;
        try {
            await client.networkWatchers.beginDeleteAndWait(RG, NW);
        } catch {
            // already gone
        }
    });

    it('netwatchd answers GET /healthz without a token', async () => {
        let res;
        try {
            res = await fetch(`${BASE}/healthz`, { signal: AbortSignal.timeout(5000) });
        } catch (e) {
            unreachable = new Error(`cannot reach netwatchd at ${BASE}: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
            throw unreachable;
        }
        record('GET', res.url, res.status, Object.fromEntries(res.headers), await res.text());
        unreachable = null;
        assert.equal(res.status, 200);
        assert.ok(res.headers.get('x-ms-request-id'), 'x-ms-request-id missing');
    });

    it('networkWatchers.createOrUpdate creates a watcher (201)', async () => {
        requireServer();
        let status;
        const nw = await client.networkWatchers.createOrUpdate(RG, NW, { location: REGION }, {
            onResponse: (raw) => { status = raw.status; },
        });
        assert.equal(status, 201);
        assert.equal(nw.id, NW_ID);
        assert.equal(nw.name, NW);
        assert.equal(nw.type, 'Microsoft.Network/networkWatchers');
        assert.equal(nw.location, REGION);
        assert.equal(nw.provisioningState, 'Succeeded');
        assert.match(nw.etag, /^W\/"[0-9a-fA-F-]{36}"$/);
        lastEtag = nw.etag;
    });

    it('networkWatchers.createOrUpdate updates it (200) and replaces the tags', async () => {
        requireServer();
        let status;
        const nw = await client.networkWatchers.createOrUpdate(RG, NW, { location: REGION, tags: { purpose: 'sdk-test' } }, {
            onResponse: (raw) => { status = raw.status; },
        });
        assert.equal(status, 200);
        assert.deepEqual(nw.tags, { purpose: 'sdk-test' });
        assert.equal(nw.location, REGION);
        lastEtag = nw.etag;
    });

    it('networkWatchers.get', async () => {
        requireServer();
        const nw = await client.networkWatchers.get(RG, NW);
        assert.equal(nw.id, NW_ID);
        assert.equal(nw.name, NW);
        assert.deepEqual(nw.tags, { purpose: 'sdk-test' });
        assert.equal(nw.etag, lastEtag);
        assert.equal(nw.provisioningState, 'Succeeded');
    });

    it('networkWatchers.updateTags replaces the tags', async () => {
        requireServer();
        const nw = await client.networkWatchers.updateTags(RG, NW, { tags: { team: 'netwatch', env: 'ci' } });
        assert.deepEqual(nw.tags, { team: 'netwatch', env: 'ci' });
        const again = await client.networkWatchers.get(RG, NW);
        assert.deepEqual(again.tags, { team: 'netwatch', env: 'ci' });
    });

    it('networkWatchers.list (resource group)', async () => {
        requireServer();
        const all = await collect(client.networkWatchers.list(RG));
        assert.deepEqual(all.map((w) => w.name), [NW]);
        assert.equal(all[0].location, REGION);
    });

    it('networkWatchers.listAll (subscription)', async () => {
        requireServer();
        const all = await collect(client.networkWatchers.listAll());
        const mine = all.filter((w) => w.id?.toLowerCase() === NW_ID.toLowerCase());
        assert.equal(mine.length, 1, `watcher ${NW_ID} not listed`);
        assert.equal(mine[0].location, REGION);
    });

    it('a second watcher in the same region is refused (NetworkWatcherCountLimitReached)', async () => {
        requireServer();
        await rejectsWith(client.networkWatchers.createOrUpdate(RG, NW2, { location: REGION }), 400, 'NetworkWatcherCountLimitReached');
        await rejectsWith(client.networkWatchers.get(RG, NW2), 404, 'ResourceNotFound');
    });

    it('packetCaptures.beginCreateAndWait fails with AgentNotConnected (no agents)', async () => {
        requireServer();
        const statuses = [];
        await timed('create', () =>
            assert.rejects(
                client.packetCaptures.beginCreateAndWait(RG, NW, PC, {
                    target: VM_ID,
                    storageLocation: { filePath: '/var/captures/sdk-test.cap' },
                }, { onResponse: (raw) => statuses.push(raw.status) }),
                (e) => {
                    // core-lro 2.x reports a failed operation as a plain Error whose message
                    // carries the status body's error.code; an HTTP error would carry it as .code.
                    assert.ok(e.code === 'AgentNotConnected' || /\bAgentNotConnected\b/.test(e.message),
                        `expected AgentNotConnected, got: ${e.code} ${e.message}`);
                    return true;
                },
            ));
        assert.equal(statuses[0], 201, `first response ${statuses[0]}`);
    });

    it('packetCaptures.get shows provisioningState Failed and the defaults', async () => {
        requireServer();
        const pc = await client.packetCaptures.get(RG, NW, PC);
        assert.equal(pc.name, PC);
        assert.equal(pc.id, `${NW_ID}/packetCaptures/${PC}`);
        assert.equal(pc.provisioningState, 'Failed');
        assert.equal(pc.target, VM_ID);
        assert.equal(pc.targetType, 'AzureVM');
        assert.equal(pc.bytesToCapturePerPacket, 0);
        assert.equal(pc.totalBytesPerSession, 1073741824);
        assert.equal(pc.timeLimitInSeconds, 18000);
        assert.deepEqual(pc.filters, []);
        assert.deepEqual(pc.scope, { include: [], exclude: [] });
        assert.equal(pc.storageLocation.filePath, '/var/captures/sdk-test.cap');
        assert.equal(pc.storageLocation.storagePath, '');
        assert.match(pc.etag, /^W\/"/);
    });

    it('packetCaptures.list', async () => {
        requireServer();
        const all = await collect(client.packetCaptures.list(RG, NW));
        assert.deepEqual(all.map((p) => p.name), [PC]);
        assert.equal(all[0].provisioningState, 'Failed');
    });

    it('packetCaptures.beginGetStatusAndWait reports NotStarted', async () => {
        requireServer();
        const st = await timed('queryStatus', () => client.packetCaptures.beginGetStatusAndWait(RG, NW, PC));
        assert.equal(st.name, PC);
        assert.equal(st.id, `${NW_ID}/packetCaptures/${PC}`);
        assert.equal(st.packetCaptureStatus, 'NotStarted');
        assert.deepEqual(st.packetCaptureError, []);
    });

    it('packetCaptures.beginStopAndWait succeeds on a capture that is not running', async () => {
        requireServer();
        await timed('stop', () => client.packetCaptures.beginStopAndWait(RG, NW, PC));
    });

    it('packetCaptures.beginDeleteAndWait, then get is 404 NotFound', async () => {
        requireServer();
        await timed('delete', () => client.packetCaptures.beginDeleteAndWait(RG, NW, PC));
        await rejectsWith(client.packetCaptures.get(RG, NW, PC), 404, 'NotFound');
        assert.deepEqual(await collect(client.packetCaptures.list(RG, NW)), []);
    });

    it('create with timeLimitInSeconds 99999 is 400 InvalidPropertyValue', async () => {
        requireServer();
        const body = await rejectsWith(client.packetCaptures.beginCreateAndWait(RG, NW, PC, {
            target: VM_ID,
            storageLocation: { filePath: '/var/captures/sdk-test.cap' },
            timeLimitInSeconds: 99999,
        }), 400, 'InvalidPropertyValue');
        assert.equal(body?.error?.target, 'properties.timeLimitInSeconds');
        await rejectsWith(client.packetCaptures.get(RG, NW, PC), 404, 'NotFound');
    });

    it('create without storageLocation is 400 MissingRequiredProperty', async () => {
        requireServer();
        const body = await rejectsWith(client.packetCaptures.beginCreateAndWait(RG, NW, PC, { target: VM_ID }),
            400, 'MissingRequiredProperty');
        assert.equal(body?.error?.target, 'properties.storageLocation');
    });

    it('api-version: missing, malformed and unsupported are refused (plain fetch)', async () => {
        requireServer();
        const path = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkWatchers/${NW}`;
        assertArmError(await http('GET', path, { query: null }), 400, 'MissingApiVersionParameter');
        assertArmError(await http('GET', path, { query: 'api-version=2015-01-01' }), 400, 'NoRegisteredProviderFound');
        const unsupported = await http('GET', path, { query: 'api-version=2099-01-01' });
        assertArmError(unsupported, 400, 'NoRegisteredProviderFound');
        assert.match(unsupported.body.error.message, /2024-05-01/, 'the message lists the supported versions');
        assertArmError(await http('GET', path, { query: 'api-version=banana' }), 400, 'InvalidApiVersionParameter');
        const ok = await http('GET', path, { headers: { 'x-ms-correlation-request-id': `corr-${RUN}` } });
        assert.equal(ok.status, 200);
        assert.equal(ok.headers.get('x-ms-correlation-request-id'), `corr-${RUN}`);
        assert.match(ok.headers.get('x-ms-request-id') ?? '', /^[0-9a-fA-F-]{36}$/);
        assert.equal(ok.headers.get('etag'), ok.body.etag);
    });

    it('authentication: no token is 401 with WWW-Authenticate, another subscription is 403', async () => {
        requireServer();
        const path = `/subscriptions/${SUB}/providers/Microsoft.Network/networkWatchers`;
        const none = await http('GET', path, { token: null });
        assertArmError(none, 401, 'AuthenticationFailed');
        assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer realm="netwatch"/);
        assertArmError(await http('GET', path, { token: `not-a-token-${RUN}` }), 401, 'AuthenticationFailed');
        const other = `/subscriptions/${randomUUID()}/providers/Microsoft.Network/networkWatchers`;
        assertArmError(await http('GET', other), 403, 'AuthorizationFailed');
    });

    it('networkWatchers.beginDeleteAndWait removes the watcher and its captures', async () => {
        requireServer();
        // A capture that failed to start still exists until deleted; the watcher takes it along.
        await assert.rejects(client.packetCaptures.beginCreateAndWait(RG, NW, PC2, {
            target: VM_ID,
            storageLocation: { filePath: '/var/captures/sdk-test-2.cap' },
        }));
        assert.equal((await client.packetCaptures.get(RG, NW, PC2)).provisioningState, 'Failed');
        await timed('watcher delete', () => client.networkWatchers.beginDeleteAndWait(RG, NW));
        await rejectsWith(client.networkWatchers.get(RG, NW), 404, 'ResourceNotFound');
        await assert.rejects(client.packetCaptures.get(RG, NW, PC2), (e) => {
            assert.equal(e.statusCode, 404);
            return true;
        });
        const all = await collect(client.networkWatchers.listAll());
        assert.equal(all.filter((w) => w.id?.toLowerCase() === NW_ID.toLowerCase()).length, 0);
        // Deleting what is gone is 204, which the SDK takes as done at once.
        await timed('watcher delete again', () => client.networkWatchers.beginDeleteAndWait(RG, NW));
    });

    it('every Retry-After is at most 1 s (docs/api.md: SDK pollers obey it)', () => {
        requireServer();
        // The timings above only show it when an operation is still running at the second
        // poll; the headers show it always.
        assert.ok(retryAfters.length > 0, 'no response carried Retry-After');
        for (const [method, url, status, value] of retryAfters) {
            assert.match(String(value), /^[0-9]+$/, `${method} ${url} ${status}: Retry-After ${value}`);
            assert.ok(Number(value) <= 1, `${method} ${url} ${status}: Retry-After ${value}`);
        }
    });
});
