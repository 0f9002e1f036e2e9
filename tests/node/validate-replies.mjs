#!/usr/bin/env node
// Checks recorded server replies against the API contract, openapi.yaml at the repository root.
//
//   node tests/node/validate-replies.mjs [--spec openapi.yaml] [--require-coverage] replies.jsonl
//
// replies.jsonl has one JSON object a line, written by the integration tests:
//   {"method":"GET","path":"/subscriptions/.../packetCaptures/pc1","status":200,"body":<JSON or null>}
// `path` has no query string; `body` is the parsed JSON body, or null when the body was empty or
// not JSON. An optional `headers` object (name -> value) is checked too when present: every
// header the contract marks required must be there, and values must fit their schema.
//
// Each reply is matched to an operation by method + path template (fixed segments compared
// case-insensitively, `{param}` = one non-empty segment; the template with most fixed segments
// wins), then its body is validated with ajv against that operation's response for the status
// (an exact code, else the `4XX`/`5XX` range). A status the operation does not declare fails.
// A path no template matches, or a method the path does not serve, is checked against the
// root `x-netwatch-unmatched` table of the contract. With --require-coverage, every operation
// must have at least one passing reply.
//
// Prints each failure (line, operation, status, what is wrong) and closes with
// `N passed, M failed`. Exit status: 0 all passed, 1 any failure (or no replies), 2 usage error.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// The packages come from tests/node/package-lock.json; say so when they are not installed.
async function need(name) {
    try {
        return (await import(name)).default;
    } catch (e) {
        if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
        console.error(`validate-replies: package ${name} is not installed; run 'npm ci' in ${HERE}`);
        process.exit(2);
    }
}
const Ajv = await need('ajv');
const addFormats = await need('ajv-formats');
const YAML = await need('yaml');
export const DEFAULT_SPEC = path.resolve(HERE, '../../openapi.yaml');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const SCHEMA_BASE = 'https://netwatch.invalid/openapi/components/schemas/';
const MAX_ERRORS_SHOWN = 12;

// Resolves a local JSON pointer ("#/components/responses/X") in the spec.
function resolvePointer(spec, ref) {
    if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
    let node = spec;
    for (const raw of ref.slice(2).split('/')) {
        const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
        if (node === null || typeof node !== 'object' || !(key in node)) {
            throw new Error(`unresolvable $ref ${ref}`);
        }
        node = node[key];
    }
    return node;
}

// Follows $ref chains of non-schema objects (responses, headers, parameters).
function deref(spec, node) {
    const seen = new Set();
    while (node && typeof node === 'object' && typeof node.$ref === 'string') {
        if (seen.has(node.$ref)) throw new Error(`$ref cycle at ${node.$ref}`);
        seen.add(node.$ref);
        node = resolvePointer(spec, node.$ref);
    }
    return node;
}

// Deep copy of a schema with `#/components/schemas/X` rewritten to the id ajv knows it by.
function rewriteRefs(node) {
    if (Array.isArray(node)) return node.map(rewriteRefs);
    if (node === null || typeof node !== 'object') return node;
    const out = {};
    for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') {
            if (!v.startsWith('#/components/schemas/')) {
                throw new Error(`schema $ref outside components/schemas: ${v}`);
            }
            out[k] = SCHEMA_BASE + v.slice('#/components/schemas/'.length);
        } else {
            out[k] = rewriteRefs(v);
        }
    }
    return out;
}

function compileTemplate(template) {
    const segments = template.split('/').slice(1).map((s) => {
        const m = /^\{([^}]+)\}$/.exec(s);
        return m ? { param: m[1] } : { fixed: s.toLowerCase() };
    });
    return { template, segments, fixedCount: segments.filter((s) => s.fixed !== undefined).length };
}

function matchTemplate(route, segments) {
    if (route.segments.length !== segments.length) return false;
    return route.segments.every((s, i) =>
        s.fixed !== undefined ? s.fixed === segments[i].toLowerCase() : segments[i].length > 0);
}

// Loads and prepares the contract. Throws on an unreadable or unusable spec.
export function loadContract(specPath = DEFAULT_SPEC) {
    const spec = YAML.parse(readFileSync(specPath, 'utf8'));
    if (!spec || typeof spec.openapi !== 'string' || !spec.openapi.startsWith('3.0.')) {
        throw new Error(`${specPath}: not an OpenAPI 3.0 document`);
    }
    // strict: unknown keywords in the contract are errors; the OpenAPI style of `required` in
    // anyOf/not branches and of type-less subschemas is allowed.
    const ajv = new Ajv({
        allErrors: true,
        strict: true,
        strictTypes: false,
        strictRequired: false,
        validateFormats: true,
    });
    addFormats(ajv);
    ajv.addVocabulary(['example', 'externalDocs', 'xml']);
    for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
        ajv.addSchema(rewriteRefs(schema), SCHEMA_BASE + name);
    }
    const routes = Object.entries(spec.paths ?? {}).map(([template, item]) => {
        const route = compileTemplate(template);
        route.operations = {};
        for (const m of METHODS) {
            if (item[m]) route.operations[m.toUpperCase()] = item[m];
        }
        return route;
    });
    routes.sort((a, b) => b.fixedCount - a.fixedCount);
    return { spec, ajv, routes, validators: new Map() };
}

function validatorFor(contract, schema) {
    let v = contract.validators.get(schema);
    if (!v) {
        v = contract.ajv.compile(rewriteRefs(schema));
        contract.validators.set(schema, v);
    }
    return v;
}

function formatAjvErrors(errors) {
    const lines = errors.slice(0, MAX_ERRORS_SHOWN).map((e) => {
        const where = e.instancePath === '' ? 'body' : `body${e.instancePath}`;
        let extra = '';
        if (e.keyword === 'enum') extra = ` (${JSON.stringify(e.params.allowedValues)})`;
        if (e.keyword === 'additionalProperties') extra = ` (${e.params.additionalProperty})`;
        return `${where} ${e.message}${extra} [${e.schemaPath.replace(SCHEMA_BASE, '#/components/schemas/')}]`;
    });
    if (errors.length > MAX_ERRORS_SHOWN) lines.push(`... and ${errors.length - MAX_ERRORS_SHOWN} more`);
    return lines;
}

function isJsonMedia(type) {
    return /^application\/(.+\+)?json\b/i.test(type);
}

function checkHeaders(contract, response, headers) {
    const errors = [];
    const given = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    for (const [name, h] of Object.entries(response.headers ?? {})) {
        const header = deref(contract.spec, h);
        const value = given.get(name.toLowerCase());
        if (value === undefined || value === null) {
            if (header.required) errors.push(`header ${name} is required but missing`);
            continue;
        }
        if (!header.schema) continue;
        let v = Array.isArray(value) ? value.join(', ') : String(value);
        const type = deref(contract.spec, header.schema).type;
        if ((type === 'integer' || type === 'number') && /^-?[0-9]+(\.[0-9]+)?$/.test(v.trim())) {
            v = Number(v.trim());
        }
        const validate = validatorFor(contract, header.schema);
        if (!validate(v)) {
            errors.push(...formatAjvErrors(validate.errors).map((e) => `header ${name}: ${e.replace(/^body/, 'value')}`));
        }
    }
    return errors;
}

// Checks one body against one response object. Returns a list of error strings.
function checkBody(contract, response, body) {
    const content = response.content ?? {};
    const types = Object.keys(content);
    if (types.length === 0) {
        return body === null || body === undefined
            ? []
            : [`no body is declared for this status, got ${JSON.stringify(body).slice(0, 80)}`];
    }
    const jsonType = types.find(isJsonMedia);
    const hasOther = types.some((t) => !isJsonMedia(t));
    // A non-JSON body is recorded as null (or as a string by a recorder that keeps text).
    if (hasOther && (body === null || body === undefined || (typeof body === 'string' && !jsonType))) {
        return [];
    }
    if (!jsonType) {
        return [`only ${types.join(', ')} is declared for this status, got JSON ${JSON.stringify(body).slice(0, 80)}`];
    }
    if (hasOther && typeof body === 'string') return [];
    const schema = content[jsonType].schema;
    if (!schema) return [];
    const validate = validatorFor(contract, schema);
    return validate(body === undefined ? null : body) ? [] : formatAjvErrors(validate.errors);
}

function pickResponse(responses, status) {
    const exact = responses[String(status)];
    if (exact) return exact;
    return responses[`${String(status)[0]}XX`] ?? responses[`${String(status)[0]}xx`];
}

// Validates one reply object. Returns {operation, errors}; errors is empty when it passes.
export function validateReply(contract, reply) {
    if (reply === null || typeof reply !== 'object' || Array.isArray(reply)) {
        return { operation: '?', errors: ['a reply must be a JSON object'] };
    }
    const { method, status } = reply;
    if (typeof method !== 'string' || method === '') return { operation: '?', errors: ['"method" must be a non-empty string'] };
    if (typeof reply.path !== 'string' || !reply.path.startsWith('/')) return { operation: '?', errors: ['"path" must be a string starting with /'] };
    const code = typeof status === 'string' && /^[0-9]{3}$/.test(status) ? Number(status) : status;
    if (!Number.isInteger(code) || code < 100 || code > 599) return { operation: '?', errors: [`"status" must be an HTTP status code, got ${JSON.stringify(status)}`] };
    if (!('body' in reply)) return { operation: '?', errors: ['"body" is missing (use null for an empty body)'] };

    const p = reply.path.split('?')[0];
    const segments = p.split('/').slice(1);
    const route = contract.routes.find((r) => matchTemplate(r, segments));
    let operation;
    let responses;
    const M = method.toUpperCase();
    const unmatched = contract.spec['x-netwatch-unmatched'] ?? {};
    if (!route) {
        operation = '(no route)';
        responses = unmatched.path ?? {};
    } else if (!route.operations[M]) {
        operation = `(${M} not served on ${route.template})`;
        responses = unmatched.method ?? {};
    } else {
        operation = route.operations[M].operationId ?? `${M} ${route.template}`;
        responses = route.operations[M].responses ?? {};
    }
    const declared = pickResponse(responses, code);
    if (!declared) {
        const list = Object.keys(responses).join(', ') || 'none';
        return { operation, errors: [`status ${code} is not declared (declared: ${list})`] };
    }
    const response = deref(contract.spec, declared);
    const errors = checkBody(contract, response, reply.body);
    if (reply.headers && typeof reply.headers === 'object') errors.push(...checkHeaders(contract, response, reply.headers));
    return { operation, errors };
}

// Validates JSON-lines text. Returns {results:[{line, method, path, status, operation, errors}], passed, failed}.
export function validateText(contract, text) {
    const results = [];
    text.split('\n').forEach((raw, i) => {
        const line = raw.trim();
        if (line === '') return;
        let reply;
        try {
            reply = JSON.parse(line);
        } catch (e) {
            results.push({ line: i + 1, method: '?', path: '?', status: '?', operation: '?', errors: [`not JSON: ${e.message}`] });
            return;
        }
        const r = validateReply(contract, reply);
        results.push({ line: i + 1, method: reply?.method, path: reply?.path, status: reply?.status, ...r });
    });
    const failed = results.filter((r) => r.errors.length > 0).length;
    return { results, passed: results.length - failed, failed };
}

function allOperations(contract) {
    const ops = [];
    for (const r of contract.routes) {
        for (const [m, op] of Object.entries(r.operations)) ops.push(op.operationId ?? `${m} ${r.template}`);
    }
    return ops;
}

function main(argv) {
    let specPath = DEFAULT_SPEC;
    let requireCoverage = false;
    const files = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--spec') specPath = argv[++i];
        else if (a.startsWith('--spec=')) specPath = a.slice('--spec='.length);
        else if (a === '--require-coverage') requireCoverage = true;
        else if (a === '-h' || a === '--help') {
            console.log('usage: validate-replies.mjs [--spec openapi.yaml] [--require-coverage] replies.jsonl');
            return 0;
        } else if (a.startsWith('-')) {
            console.error(`validate-replies: unknown option ${a}`);
            return 2;
        } else files.push(a);
    }
    if (files.length !== 1 || !specPath) {
        console.error('usage: validate-replies.mjs [--spec openapi.yaml] [--require-coverage] replies.jsonl');
        return 2;
    }
    let contract;
    let text;
    try {
        contract = loadContract(specPath);
        text = readFileSync(files[0], 'utf8');
    } catch (e) {
        console.error(`validate-replies: ${e.message}`);
        return 2;
    }
    const { results, passed, failed } = validateText(contract, text);
    for (const r of results) {
        if (r.errors.length === 0) continue;
        console.log(`FAIL line ${r.line}: ${r.method} ${r.path} -> ${r.operation} ${r.status}`);
        for (const e of r.errors) console.log(`    ${e}`);
    }
    let status = failed > 0 ? 1 : 0;
    if (results.length === 0) {
        console.log(`validate-replies: no replies in ${files[0]}`);
        status = 1;
    }
    if (requireCoverage) {
        const seen = new Set(results.filter((r) => r.errors.length === 0).map((r) => r.operation));
        const missing = allOperations(contract).filter((op) => !seen.has(op));
        for (const op of missing) console.log(`NO REPLY for operation ${op}`);
        if (missing.length > 0) status = 1;
    }
    console.log(`${passed} passed, ${failed} failed`);
    return status;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    process.exitCode = main(process.argv.slice(2));
}
