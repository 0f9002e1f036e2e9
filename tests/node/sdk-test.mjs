// The official Azure SDK for JavaScript (@azure/arm-network's NetworkManagementClient, pinned in
// package.json) driven against a running netwatchd: every operation, first on a VM that has no
// agent (the capture fails with AgentNotConnected), then the whole capture lifecycle on a VM whose
// real netwatch-agent is connected (create, get, list, status Running, UDP traffic, stop, status
// Stopped/Manual, delete, and the pcap file the agent wrote holds that traffic).
//
//   NETWATCH_URL=https://127.0.0.1:PORT NETWATCH_TOKEN=... NETWATCH_SUB=<subscription GUID> \
//   NETWATCH_AGENT_VM=<VM resource id> NETWATCH_CAPTURE_ROOT=<the agent's --capture-root> \
//       node --test tests/node/sdk-test.mjs
// or, starting a throw-away server: tests/node/run-sdk-test.sh build/server/netwatchd
//
// The client is used unmodified but for the endpoint and the credential, over HTTPS (the
// SDK's bearer-token policy, rightly, sends tokens only over TLS): run-sdk-test.sh starts
// netwatchd with a throw-away certificate that NODE_EXTRA_CA_CERTS makes trusted. An observer
// policy records each reply for the contract check; it changes nothing.
//
// NETWATCH_AGENT_VM is a VM of NETWATCH_SUB whose agent runs on this machine with
// --interfaces lo and --capture-root NETWATCH_CAPTURE_ROOT; without the two, the agent tests are
// skipped.
//
// NETWATCH_REPLIES=FILE also appends every HTTP reply (method, path, status, headers, body) to
// FILE as JSON lines, for validate-replies.mjs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, it } from 'node:test';
import { NetworkManagementClient } from '@azure/arm-network';

const BASE = (process.env.NETWATCH_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.NETWATCH_TOKEN ?? '';
const SUB = process.env.NETWATCH_SUB ?? '';
const REPLIES = process.env.NETWATCH_REPLIES ?? '';
const AGENT_VM = process.env.NETWATCH_AGENT_VM ?? '';
const CAPTURE_ROOT = process.env.NETWATCH_CAPTURE_ROOT ?? '';
const NO_AGENT = AGENT_VM && CAPTURE_ROOT ? false : 'NETWATCH_AGENT_VM and NETWATCH_CAPTURE_ROOT are not set';

// Each long-running operation must be done within this: netwatchd's monitors answer
// Retry-After: 1, and the SDK's pollers obey it (Azure's usual 10 s would blow this budget).
const LRO_BUDGET_MS = 3000;
// A create or stop its agent answers at once must be done within a second: netwatchd answers
// the SDK's first poll when the agent's ack lands instead of sending it away for Retry-After.
const AGENT_LRO_BUDGET_MS = 1000;
const API_VERSION = '2024-05-01'; // what @azure/arm-network 33.5.0 sends; used for plain fetches
const AGENTS_API_VERSION = '2024-07-01'; // Netwatch/agents (not in the SDK)
const AGENT_CONNECT_MS = 15000;

// Names unique to this run, so that a server with other data still passes. The region is new
// too, so the one-watcher-per-region rule only sees this run's watchers.
const RUN = randomUUID().replace(/-/g, '').slice(0, 10);
const RG = `nwsdk-rg-${RUN}`;
const REGION = `sdktest${RUN}`;
const NW = `nwsdk-${RUN}`;
const NW2 = `nwsdk2-${RUN}`;
const PC = `pc-${RUN}`;
const PC2 = `pc2-${RUN}`;
const PCA = `pca-${RUN}`; // the capture the agent runs
const PCA_FILE = `sdk-agent-${RUN}.cap`; // /var/captures/<it> is <capture root>/<it>
const UDP_PORT = 20000 + Math.floor(Math.random() * 40000); // the capture's filter: UDP to it
const UDP_COUNT = 5;
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

async function timed(what, fn, budgetMs = LRO_BUDGET_MS) {
    const t0 = performance.now();
    try {
        return await fn();
    } finally {
        const ms = performance.now() - t0;
        assert.ok(ms < budgetMs, `${what} took ${Math.round(ms)} ms, over the ${budgetMs} ms budget (Retry-After too long?)`);
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Sends count UDP datagrams to 127.0.0.1:port (nobody listens; the capture still sees them).
async function sendUdp(port, count) {
    const sock = dgram.createSocket('udp4');
    try {
        for (let i = 0; i < count; i++) {
            await new Promise((resolve, reject) =>
                sock.send(Buffer.from(`netwatch-sdk-${RUN}-${i}`), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
        }
    } finally {
        sock.close();
    }
}

// Reads a classic pcap file: its link type and how many records are IPv4 UDP datagrams to
// dstPort (the record's captured bytes; a short snapshot that cuts the UDP header is not counted).
function pcapUdpCount(buf, dstPort) {
    assert.ok(buf.length >= 24, `${buf.length} bytes, shorter than the pcap file header`);
    const magic = buf.readUInt32LE(0);
    let le;
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
    else assert.fail(`not a pcap file (magic 0x${magic.toString(16)})`);
    const u32 = (off) => (le ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
    const linkType = u32(20) & 0x0fffffff;
    // Where the IPv4 header starts in a frame of this link type.
    const ipOffset = { 0: 4, 1: 14, 12: 0, 101: 0, 113: 16, 228: 0, 276: 20 }[linkType];
    assert.notEqual(ipOffset, undefined, `unexpected pcap link type ${linkType}`);
    let off = 24;
    let records = 0;
    let matching = 0;
    while (off + 16 <= buf.length) {
        const incl = u32(off + 8);
        const frame = buf.subarray(off + 16, off + 16 + incl);
        assert.equal(frame.length, incl, `record ${records} is cut short`);
        off += 16 + incl;
        records++;
        const ip = frame.subarray(ipOffset);
        if (ip.length < 20 || ip[0] >> 4 !== 4 || ip[9] !== 17) continue;
        const udp = ip.subarray((ip[0] & 0x0f) * 4);
        if (udp.length >= 4 && udp.readUInt16BE(2) === dstPort) matching++;
    }
    assert.equal(off, buf.length, 'trailing bytes after the last record');
    return { linkType, records, matching };
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

    // Likewise the agent tests, when the agent never connected.
    let agentDown = new Error('the agent-connected check has not run');
    function requireAgent() {
        requireServer();
        if (agentDown) throw agentDown;
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

    it('the agent of NETWATCH_AGENT_VM shows connected (Netwatch/agents, plain fetch)', { skip: NO_AGENT }, async () => {
        requireServer();
        const end = Date.now() + AGENT_CONNECT_MS;
        let mine;
        for (;;) {
            const res = await http('GET', `/subscriptions/${SUB}/providers/Netwatch/agents`, { query: `api-version=${AGENTS_API_VERSION}` });
            assert.equal(res.status, 200, JSON.stringify(res.body));
            mine = res.body.value.filter((a) => a.properties.resourceId.toLowerCase() === AGENT_VM.toLowerCase() && !a.properties.revoked);
            assert.equal(mine.length, 1, `one active agent registered for ${AGENT_VM}`);
            if (mine[0].properties.connected === true || Date.now() > end) break;
            await sleep(200);
        }
        if (mine[0].properties.connected !== true) {
            agentDown = new Error(`the agent for ${AGENT_VM} did not connect within ${AGENT_CONNECT_MS} ms`);
            throw agentDown;
        }
        agentDown = null;
        assert.ok(mine[0].properties.interfaces.some((i) => i.name === 'lo'), 'the agent reports no interface lo');
    });

    it('with an agent: packetCaptures.beginCreateAndWait succeeds (the agent acks)', { skip: NO_AGENT }, async () => {
        requireAgent();
        const statuses = [];
        const pc = await timed('create', () => client.packetCaptures.beginCreateAndWait(RG, NW, PCA, {
            target: AGENT_VM,
            storageLocation: { filePath: `/var/captures/${PCA_FILE}` },
            filters: [{ protocol: 'UDP', localPort: String(UDP_PORT) }],
        }, { onResponse: (raw) => statuses.push(raw.status) }), AGENT_LRO_BUDGET_MS);
        assert.equal(statuses[0], 201, `first response ${statuses[0]}`);
        assert.equal(pc.name, PCA);
        assert.equal(pc.provisioningState, 'Succeeded');
    });

    it('with an agent: packetCaptures.get shows Succeeded and the filter', { skip: NO_AGENT }, async () => {
        requireAgent();
        const pc = await client.packetCaptures.get(RG, NW, PCA);
        assert.equal(pc.id, `${NW_ID}/packetCaptures/${PCA}`);
        assert.equal(pc.provisioningState, 'Succeeded');
        assert.equal(pc.target, AGENT_VM);
        assert.equal(pc.targetType, 'AzureVM');
        assert.equal(pc.storageLocation.filePath, `/var/captures/${PCA_FILE}`);
        assert.deepEqual(pc.filters, [{
            protocol: 'UDP', localIPAddress: '', remoteIPAddress: '', localPort: String(UDP_PORT), remotePort: '',
        }]);
    });

    it('with an agent: packetCaptures.list', { skip: NO_AGENT }, async () => {
        requireAgent();
        const all = await collect(client.packetCaptures.list(RG, NW));
        assert.deepEqual(all.map((p) => [p.name, p.provisioningState]), [[PCA, 'Succeeded']]);
    });

    it('with an agent: packetCaptures.beginGetStatusAndWait reports Running', { skip: NO_AGENT }, async () => {
        requireAgent();
        const st = await timed('queryStatus', () => client.packetCaptures.beginGetStatusAndWait(RG, NW, PCA));
        assert.equal(st.name, PCA);
        assert.equal(st.id, `${NW_ID}/packetCaptures/${PCA}`);
        assert.equal(st.packetCaptureStatus, 'Running');
        assert.ok(st.captureStartTime instanceof Date && !Number.isNaN(st.captureStartTime.getTime()),
            `captureStartTime ${st.captureStartTime}`);
        assert.ok(Math.abs(Date.now() - st.captureStartTime.getTime()) < 60000, `captureStartTime ${st.captureStartTime.toISOString()} is not now`);
        assert.equal(st.stopReason, undefined);
        assert.deepEqual(st.packetCaptureError, []);
    });

    it('with an agent: UDP traffic, then packetCaptures.beginStopAndWait ends the capture', { skip: NO_AGENT }, async () => {
        requireAgent();
        await sendUdp(UDP_PORT, UDP_COUNT);
        await sleep(300); // to the capture before the stop
        await timed('stop', () => client.packetCaptures.beginStopAndWait(RG, NW, PCA), AGENT_LRO_BUDGET_MS);
    });

    it('with an agent: packetCaptures.beginGetStatusAndWait reports Stopped, Manual', { skip: NO_AGENT }, async () => {
        requireAgent();
        const st = await timed('queryStatus', () => client.packetCaptures.beginGetStatusAndWait(RG, NW, PCA));
        assert.equal(st.packetCaptureStatus, 'Stopped');
        assert.equal(st.stopReason, 'Manual');
        assert.ok(st.captureStartTime instanceof Date, `captureStartTime ${st.captureStartTime}`);
        assert.deepEqual(st.packetCaptureError, []);
    });

    it('with an agent: packetCaptures.beginDeleteAndWait, then get is 404 NotFound', { skip: NO_AGENT }, async () => {
        requireAgent();
        await timed('delete', () => client.packetCaptures.beginDeleteAndWait(RG, NW, PCA));
        await rejectsWith(client.packetCaptures.get(RG, NW, PCA), 404, 'NotFound');
        assert.deepEqual(await collect(client.packetCaptures.list(RG, NW)), []);
    });

    it('with an agent: the pcap file under the capture root holds the UDP datagrams', { skip: NO_AGENT }, (t) => {
        requireAgent();
        const file = path.join(CAPTURE_ROOT, PCA_FILE);
        let size;
        try {
            size = statSync(file).size;
        } catch (e) {
            assert.fail(`capture file ${file}: ${e.code ?? e.message}`);
        }
        assert.ok(size > 24, `capture file ${file} has ${size} bytes, no more than the 24-byte pcap header`);
        const { linkType, records, matching } = pcapUdpCount(readFileSync(file), UDP_PORT);
        t.diagnostic(`${file}: ${size} bytes, link type ${linkType}, ${records} records, ${matching} to UDP port ${UDP_PORT}`);
        assert.ok(matching >= UDP_COUNT,
            `${file} (link type ${linkType}, ${records} records) holds ${matching} UDP datagrams to port ${UDP_PORT}, want ${UDP_COUNT}`);
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
