import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import type { SignpostError } from '../src/errors.ts';
import { createSubnetMatcher, resolveCallerZone, parseZoneOptions } from '../src/zone.ts';

let server: Server;
let base: string;
let requests: string[] = [];
let respond: (url: string) => { status: number; body: string } | 'hang' = () => ({ status: 404, body: '' });

beforeAll(async () => {
  server = createServer((request, response) => {
    requests.push(request.url ?? '');
    const answer = respond(request.url ?? '');
    if (answer === 'hang') return;
    response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4/abc`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  requests = [];
  vi.restoreAllMocks();
});

function captureWarnings() {
  return vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
}

describe('resolveCallerZone', () => {
  test('an explicit name wins, without a request', async () => {
    expect(await resolveCallerZone({ zone: 'us-east-1a', env: { SIGNPOST_ZONE: 'us-east-1b' } })).toBe('us-east-1a');
    expect(requests).toEqual([]);
  });

  test('SIGNPOST_ZONE is used when zone is not set; nothing gives undefined', async () => {
    expect(await resolveCallerZone({ env: { SIGNPOST_ZONE: 'us-east-1b' } })).toBe('us-east-1b');
    expect(await resolveCallerZone({ env: {} })).toBeUndefined();
  });

  test("'auto' reads AvailabilityZone from the ECS task metadata", async () => {
    respond = (url) =>
      url === '/v4/abc/task'
        ? { status: 200, body: JSON.stringify({ Cluster: 'c', AvailabilityZone: 'us-west-2c' }) }
        : { status: 404, body: '' };
    expect(await resolveCallerZone({ zone: 'auto', env: { ECS_CONTAINER_METADATA_URI_V4: base } })).toBe('us-west-2c');
    expect(await resolveCallerZone({ env: { SIGNPOST_ZONE: 'auto', ECS_CONTAINER_METADATA_URI_V4: `${base}/` } })).toBe(
      'us-west-2c',
    );
    expect(requests).toEqual(['/v4/abc/task', '/v4/abc/task']);
  });

  test("'auto' off ECS yields undefined without a request, with one warning", async () => {
    const warnings = captureWarnings();
    expect(await resolveCallerZone({ zone: 'auto', env: {} })).toBeUndefined();
    expect(requests).toEqual([]);
    expect(warnings).toHaveBeenCalledTimes(1);
    expect(warnings.mock.calls[0]?.[1]).toEqual({ code: 'SIGNPOST_ZONE' });
  });

  const failures: [string, ReturnType<typeof respond>][] = [
    ['an HTTP error', { status: 500, body: 'oops' }],
    ['a body that is not JSON', { status: 200, body: '<html>' }],
    ['no AvailabilityZone', { status: 200, body: '{"Cluster":"c"}' }],
    ['a hung endpoint', 'hang'],
  ];
  test.each(failures)('%s yields undefined with one SIGNPOST_ZONE warning, never a rejection', async (_, answer) => {
    respond = () => answer;
    const warnings = captureWarnings();
    const zone = await resolveCallerZone({ zone: 'auto', env: { ECS_CONTAINER_METADATA_URI_V4: base }, timeout: 200 });
    expect(zone).toBeUndefined();
    expect(warnings).toHaveBeenCalledTimes(1);
    expect(String(warnings.mock.calls[0]?.[0])).toMatch(/zone/);
    expect(warnings.mock.calls[0]?.[1]).toEqual({ code: 'SIGNPOST_ZONE' });
  });

  test('a closed port yields undefined with one warning', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const warnings = captureWarnings();
    expect(await resolveCallerZone({ zone: 'auto', env: { ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${port}/v4` } })).toBeUndefined();
    expect(warnings).toHaveBeenCalledTimes(1);
  });
});

describe('createSubnetMatcher', () => {
  const match = createSubnetMatcher({
    '10.0.0.0/16': 'us-east-1a',
    '10.0.1.0/24': 'us-east-1b',
    '10.0.1.128/25': 'us-east-1c',
    'fd00:1::/64': 'us-east-1a',
    'fd00::/16': 'us-east-1d',
  });

  test('gives the zone of the most specific subnet', () => {
    expect(match('10.0.5.1')).toBe('us-east-1a');
    expect(match('10.0.1.1')).toBe('us-east-1b');
    expect(match('10.0.1.200')).toBe('us-east-1c');
    expect(match('fd00:1::5')).toBe('us-east-1a');
    expect(match('fd00:2::5')).toBe('us-east-1d');
  });

  test('matches IPv4-mapped IPv6 addresses against IPv4 subnets', () => {
    expect(match('::ffff:10.0.1.1')).toBe('us-east-1b');
  });

  test('gives undefined for addresses in no subnet, and for non-addresses', () => {
    expect(match('192.168.0.1')).toBeUndefined();
    expect(match('2001:db8::1')).toBeUndefined();
    expect(match('orders.myapp.local')).toBeUndefined();
    expect(createSubnetMatcher({})('10.0.0.1')).toBeUndefined();
  });

  const bad: [string, unknown][] = [
    ['10.0.1.0', { '10.0.1.0': 'a' }],
    ['10.0.1.0/33', { '10.0.1.0/33': 'a' }],
    ['fd00::/129', { 'fd00::/129': 'a' }],
    ['10.0.1/24', { '10.0.1/24': 'a' }],
    ['10.0.1.0/x', { '10.0.1.0/x': 'a' }],
    ['10.0.1.0/24', { '10.0.1.0/24': '' }],
    ['10.0.2.0/24', { '10.0.2.0/24': 5 }],
  ];
  test.each(bad)('rejects %s, naming the key', (key, subnets) => {
    let error: SignpostError | undefined;
    try {
      createSubnetMatcher(subnets as Record<string, string>);
    } catch (e) {
      error = e as SignpostError;
    }
    expect(error?.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error?.message).toContain(key);
  });
});

describe('parseZoneOptions', () => {
  test.each([
    ['zone', { zone: '' }],
    ['zone', { zone: 3 }],
    ['subnets', { subnets: 'a' }],
    ['subnets', { subnets: ['10.0.0.0/8'] }],
    ['10.0.0.0/99', { subnets: { '10.0.0.0/99': 'a' } }],
  ])('rejects a bad %s with SIGNPOST_ERR_INVALID_ARG', (name, options) => {
    let error: SignpostError | undefined;
    try {
      parseZoneOptions(options);
    } catch (e) {
      error = e as SignpostError;
    }
    expect(error?.code).toBe('SIGNPOST_ERR_INVALID_ARG');
    expect(error?.message).toContain(name);
  });

  test('accepts names, auto and subnets', () => {
    expect(() => parseZoneOptions({ zone: 'auto', subnets: { '10.0.0.0/8': 'a' } })).not.toThrow();
    expect(() => parseZoneOptions({})).not.toThrow();
  });
});
