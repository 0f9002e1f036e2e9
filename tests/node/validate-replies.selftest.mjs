// Self-test of validate-replies.mjs against the real openapi.yaml: good replies pass, and a wrong
// type, a missing required field and an undeclared status each fail, in-process and through the
// command line (exit status and closing line).
//   node --test tests/node/validate-replies.selftest.mjs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadContract, validateReply } from './validate-replies.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.join(HERE, 'validate-replies.mjs');

const SUB = '00000000-0000-0000-0000-000000000001';
const RG = `/subscriptions/${SUB}/resourceGroups/rg1`;
const NW = `${RG}/providers/Microsoft.Network/networkWatchers/nw1`;
const PC = `${NW}/packetCaptures/pc1`;
const OPS = `/subscriptions/${SUB}/providers/Microsoft.Network/locations/westus2`;
const OPID = '6f1c2a0e-7a1b-4c55-9d3e-0b5a4c1d2e3f';
const ETAG = 'W/"9a2f6b1c-3d4e-4f50-8a7b-1c2d3e4f5a6b"';

const watcher = () => ({
    id: NW,
    name: 'nw1',
    type: 'Microsoft.Network/networkWatchers',
    location: 'westus2',
    tags: {},
    etag: ETAG,
    properties: { provisioningState: 'Succeeded', runningOperationIds: [] },
});
const capture = (state = 'Updating') => ({
    name: 'pc1',
    id: PC,
    etag: ETAG,
    type: 'Microsoft.Network/networkWatchers/packetCaptures',
    properties: {
        provisioningState: state,
        target: `${RG}/providers/Microsoft.Compute/virtualMachines/vm1`,
        targetType: 'AzureVM',
        scope: { include: [], exclude: [] },
        bytesToCapturePerPacket: 0,
        totalBytesPerSession: 1073741824,
        timeLimitInSeconds: 18000,
        storageLocation: { storagePath: '', filePath: '/var/captures/pc1.cap' },
        filters: [{ protocol: 'TCP', localIPAddress: '10.0.0.4', remoteIPAddress: '', localPort: '80', remotePort: '' }],
    },
});
const err = (code, message = 'something') => ({ error: { code, message, details: [] } });

const GOOD = [
    { method: 'GET', path: '/healthz', status: 200, body: null },
    { method: 'GET', path: '/metrics', status: 200, body: null },
    { method: 'PUT', path: NW, status: 201, body: watcher() },
    { method: 'GET', path: NW.toLowerCase(), status: 200, body: watcher() },
    { method: 'GET', path: `/subscriptions/${SUB}/providers/Microsoft.Network/networkWatchers`, status: 200, body: { value: [watcher()] } },
    { method: 'PUT', path: `${NW}/packetCaptures/pc1`, status: 201, body: capture() },
    { method: 'GET', path: PC, status: 200, body: capture('Failed') },
    { method: 'GET', path: PC, status: 200, body: (() => { const c = capture('Succeeded'); c.properties.filters[0].protocol = 'ICMP'; return c; })() },
    {
        method: 'GET', path: PC, status: 200,
        body: (() => {
            const c = capture('Succeeded');
            delete c.properties.totalBytesPerSession;
            delete c.properties.timeLimitInSeconds;
            c.properties.storageLocation = { storagePath: '', localPath: '/var/captures/ring.cap' };
            c.properties.continuousCapture = true;
            c.properties.captureSettings = { fileCount: 10, fileSizeInBytes: 104857600, sessionTimeLimitInSeconds: 86400 };
            return c;
        })(),
    },
    { method: 'GET', path: `${NW}/packetCaptures`, status: 200, body: { value: [] } },
    { method: 'POST', path: `${PC}/queryStatus`, status: 200, body: { name: 'pc1', id: PC, packetCaptureStatus: 'NotStarted', packetCaptureError: [] } },
    { method: 'POST', path: `${PC}/stop`, status: 202, body: null },
    { method: 'DELETE', path: PC, status: 204, body: null },
    { method: 'GET', path: `${OPS}/operations/${OPID}`, status: 200, body: { id: `${OPS}/operations/${OPID}`, name: OPID, status: 'InProgress', startTime: '2026-03-17T03:37:35.4291019Z' } },
    {
        method: 'GET', path: `${OPS}/operations/${OPID}`, status: 200,
        body: { id: `${OPS}/operations/${OPID}`, name: OPID, status: 'Failed', startTime: '2026-03-17T03:37:35Z', endTime: '2026-03-17T03:37:35.1Z', error: { code: 'AgentNotConnected', message: 'no agent' } },
    },
    { method: 'GET', path: `${OPS}/operationResults/${OPID}`, status: 202, body: null },
    { method: 'GET', path: `${OPS}/operationResults/${OPID}`, status: 200, body: null },
    { method: 'GET', path: `${OPS}/operationResults/${OPID}`, status: 503, body: err('AgentNotConnected') },
    { method: 'GET', path: PC, status: 404, body: err('NotFound', `Resource ${PC} not found.`) },
    { method: 'GET', path: NW, status: 401, body: err('AuthenticationFailed'), headers: { 'x-ms-request-id': OPID, 'X-MS-Correlation-Request-Id': 'abc', 'WWW-Authenticate': 'Bearer realm="netwatch"' } },
    { method: 'PUT', path: PC, status: 400, body: { error: { code: 'InvalidPropertyValue', message: 'too long', target: 'properties.timeLimitInSeconds', details: [] } } },
    { method: 'PATCH', path: PC, status: 405, body: err('MethodNotAllowed') },
    { method: 'GET', path: `/subscriptions/${SUB}/nothing/here`, status: 404, body: err('NotFound', 'No route matches') },
];

// Each bad reply, and a piece of the message it must produce.
const BAD = [
    // wrong type: a number sent as a string
    [{ method: 'GET', path: PC, status: 200, body: (() => { const c = capture(); c.properties.bytesToCapturePerPacket = '0'; return c; })() },
        /bytesToCapturePerPacket must be integer/],
    // missing required field: the watcher has no etag
    [{ method: 'GET', path: NW, status: 200, body: (() => { const w = watcher(); delete w.etag; return w; })() },
        /must have required property 'etag'/],
    // undeclared status: PacketCaptures_Get never answers 201
    [{ method: 'GET', path: PC, status: 201, body: capture() }, /status 201 is not declared/],
];

const MORE_BAD = [
    // an enum value out of the list
    [{ method: 'POST', path: `${PC}/queryStatus`, status: 200, body: { name: 'pc1', id: PC, packetCaptureStatus: 'Started', packetCaptureError: [] } },
        /must be equal to one of the allowed values/],
    // responses use the canonical protocol casing
    [{ method: 'GET', path: PC, status: 200, body: (() => { const c = capture(); c.properties.filters[0].protocol = 'tcp'; return c; })() },
        /protocol must be equal to one of the allowed values/],
    // filters must be an array
    [{ method: 'GET', path: PC, status: 200, body: (() => { const c = capture(); c.properties.filters = {}; return c; })() }, /filters must be array/],
    // a body where the contract declares none
    [{ method: 'DELETE', path: PC, status: 204, body: {} }, /no body is declared/],
    // null where an object is required
    [{ method: 'GET', path: NW, status: 200, body: null }, /body must be object/],
    // a failed operation without its error
    [{ method: 'GET', path: `${OPS}/operations/${OPID}`, status: 200, body: { id: `${OPS}/operations/${OPID}`, name: OPID, status: 'Failed', startTime: '2026-03-17T03:37:35Z', endTime: '2026-03-17T03:37:36Z' } },
        /must have required property 'error'/],
    // error code not in the 400 list, and no details array
    [{ method: 'PUT', path: PC, status: 400, body: { error: { code: 'Oops', message: 'x' } } }, /details|allowed values/],
    // a required header missing
    [{ method: 'GET', path: NW, status: 401, body: err('AuthenticationFailed'), headers: { 'x-ms-request-id': OPID, 'x-ms-correlation-request-id': 'a' } },
        /header WWW-Authenticate is required/],
    // continuous capture must not also report the time limit
    [{ method: 'GET', path: PC, status: 200, body: (() => { const c = capture(); c.properties.continuousCapture = true; c.properties.captureSettings = {}; c.properties.storageLocation = { storagePath: '', localPath: '/var/captures/x.cap' }; return c; })() },
        /must match a schema in anyOf/],
];

let contract;
let dir;
before(() => {
    contract = loadContract();
    dir = mkdtempSync(path.join(tmpdir(), 'validate-replies-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function runCli(replies, extra = []) {
    const file = path.join(dir, `r${Math.random().toString(16).slice(2)}.jsonl`);
    writeFileSync(file, replies.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return spawnSync(process.execPath, [SCRIPT, ...extra, file], { encoding: 'utf8' });
}

describe('validate-replies', () => {
    it('accepts every good reply', () => {
        for (const reply of GOOD) {
            const r = validateReply(contract, reply);
            assert.deepEqual(r.errors, [], `${reply.method} ${reply.path} ${reply.status} (${r.operation})`);
        }
    });

    for (const [reply, want] of [...BAD, ...MORE_BAD]) {
        it(`rejects ${reply.method} ${reply.status}: ${want}`, () => {
            const r = validateReply(contract, reply);
            assert.ok(r.errors.length > 0, 'expected a failure');
            assert.match(r.errors.join('\n'), want);
        });
    }

    it('matches fixed segments case-insensitively and names the operation', () => {
        const r = validateReply(contract, { method: 'get', path: PC.replace('resourceGroups', 'RESOURCEGROUPS').replace('Microsoft.Network', 'microsoft.network'), status: 200, body: capture() });
        assert.equal(r.operation, 'PacketCaptures_Get');
        assert.deepEqual(r.errors, []);
    });

    it('command line: good file passes with exit 0', () => {
        const p = runCli(GOOD);
        assert.equal(p.status, 0, p.stdout + p.stderr);
        assert.match(p.stdout, new RegExp(`^${GOOD.length} passed, 0 failed$`, 'm'));
    });

    it('command line: bad file fails with exit 1 and lists each mismatch', () => {
        const p = runCli([GOOD[2], ...BAD.map(([r]) => r)]);
        assert.equal(p.status, 1, p.stdout + p.stderr);
        assert.match(p.stdout, /^1 passed, 3 failed$/m);
        assert.match(p.stdout, /FAIL line 2: GET .*pc1 -> PacketCaptures_Get 200/);
        assert.match(p.stdout, /FAIL line 3: GET .*nw1 -> NetworkWatchers_Get 200/);
        assert.match(p.stdout, /FAIL line 4: GET .*pc1 -> PacketCaptures_Get 201/);
        for (const [, want] of BAD) assert.match(p.stdout, want);
    });

    it('command line: unparsable lines fail, an empty file fails, bad usage exits 2', () => {
        const file = path.join(dir, 'junk.jsonl');
        writeFileSync(file, '{"method":\n');
        let p = spawnSync(process.execPath, [SCRIPT, file], { encoding: 'utf8' });
        assert.equal(p.status, 1);
        assert.match(p.stdout, /not JSON/);
        writeFileSync(file, '\n');
        p = spawnSync(process.execPath, [SCRIPT, file], { encoding: 'utf8' });
        assert.equal(p.status, 1);
        assert.match(p.stdout, /^0 passed, 0 failed$/m);
        p = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
        assert.equal(p.status, 2);
    });

    it('command line: --require-coverage reports operations without a reply', () => {
        const p = runCli([GOOD[2]], ['--require-coverage']);
        assert.equal(p.status, 1);
        assert.match(p.stdout, /NO REPLY for operation PacketCaptures_Create/);
        assert.doesNotMatch(p.stdout, /NO REPLY for operation NetworkWatchers_CreateOrUpdate/);
    });
});
