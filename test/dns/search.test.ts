/**
 * Short names through the search list, as getaddrinfo treats them: Kubernetes `http://orders/`
 * and ECS-style short names, with `services`/`namespaces` rules matched against the expanded
 * name and the Host header kept as the caller wrote it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DiscoveryAgent } from '../../src/agent/index.ts';
import { Discovery } from '../../src/discovery.ts';
import { candidatesOf, readHostsFile } from '../../src/dns/search.ts';
import type { DiscoveryOptions } from '../../src/options.ts';
import { Bind9 } from '../fixtures/bind9.ts';
import { Fleet } from '../fixtures/fleet.ts';

let bind: Bind9;
let fleet: Fleet;

beforeAll(async () => {
  fleet = await Fleet.start(2, { samePort: true, firstOctet: 40 });
  bind = await Bind9.start({
    zones: {
      // Kubernetes: <service>.<namespace>.svc.cluster.local
      'svc.cluster.local': [
        ...fleet.servers.map((s) => `orders.default 30 IN A ${s.address}`),
        'payments.billing 30 IN A 127.0.0.45',
        'orders.billing 30 IN A 127.0.0.46',
      ].join('\n'),
      'myapp.local': 'inventory 30 IN A 127.0.0.47',
    },
    brokenZones: ['broken.local'],
  });
});

afterAll(async () => {
  await fleet?.close();
  await bind?.close();
});

const K8S_SEARCH = ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];

function discovery(options: DiscoveryOptions = {}): Discovery {
  return new Discovery({
    ...options,
    dns: { servers: [bind.server], timeout: 500, tries: 1, search: K8S_SEARCH, ndots: 5, ...options.dns },
  });
}

describe('Kubernetes short names (search default.svc.cluster.local svc.cluster.local cluster.local, ndots:5)', () => {
  test('`orders` is orders.default.svc.cluster.local, routed by the rule the expanded name matches', async () => {
    const port = fleet.servers[0]!.port;
    const d = discovery({ namespaces: { 'svc.cluster.local': { via: 'dns', port, family: 4 } } });
    try {
      expect(d.handles('orders')).toBe(true);
      const instances = await d.resolve('orders');
      expect(instances.map((i) => `${i.address}:${i.port}`).sort()).toEqual(fleet.servers.map((s) => `${s.address}:${port}`).sort());
    } finally {
      await d.close();
    }
  });

  test('`payments.billing`: the first search domain has no such name, the second does', async () => {
    const d = discovery({ namespaces: { 'svc.cluster.local': { via: 'dns', family: 4 } } });
    try {
      expect((await d.resolve('payments.billing')).map((i) => i.address)).toEqual(['127.0.0.45']);
      // Tried in order: payments.billing.default.svc.cluster.local (NXDOMAIN), then the one that exists.
      expect(bind.queries('payments.billing.default.svc.cluster.local', 'A')).toBeGreaterThanOrEqual(1);
      expect(bind.queries('payments.billing.cluster.local', 'A')).toBe(0);
    } finally {
      await d.close();
    }
  });

  test('a name a rule matches as written is complete: never expanded (no ndots:5 query storm)', async () => {
    const d = discovery({ namespaces: { 'svc.cluster.local': { via: 'dns', family: 4 } } });
    try {
      await d.resolve('orders.billing.svc.cluster.local');
      expect(bind.queries('orders.billing.svc.cluster.local.default.svc.cluster.local')).toBe(0);
    } finally {
      await d.close();
    }
  });

  test('localhost and the hosts file are answered before any search (as getaddrinfo does): never expanded, passed through', async () => {
    const d = discovery({ namespaces: { 'svc.cluster.local': { via: 'dns' } } });
    try {
      expect(d.handles('localhost')).toBe(false);
      expect(d.handles('app.localhost')).toBe(false);
      expect(d.handles('orders')).toBe(true);
    } finally {
      await d.close();
    }
    const dir = await mkdtemp(join(tmpdir(), 'signpost-hosts-'));
    try {
      await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n10.0.0.9 host.docker.internal Builder.Local. # comment\nnot-an-address x\n');
      expect([...readHostsFile(join(dir, 'hosts'))].sort()).toEqual(['builder.local', 'host.docker.internal', 'localhost']);
      expect(readHostsFile(join(dir, 'missing'))).toEqual(new Set());
      const settings = { search: K8S_SEARCH, ndots: 5, noTldQuery: false, source: 'test', hosts: new Set(['host.docker.internal']) };
      expect(candidatesOf('host.docker.internal', settings)).toEqual(['host.docker.internal']);
      expect(candidatesOf('orders', settings)).toHaveLength(4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('names no rule matches, even expanded, are not discovered (the agent passes them through)', async () => {
    const d = discovery({ namespaces: { 'myapp.local': { via: 'dns' } } });
    try {
      expect(d.handles('orders')).toBe(false);
    } finally {
      await d.close();
    }
  });

  test('the agent: http://orders/ reaches an instance with the Host header the caller wrote', async () => {
    const port = fleet.servers[0]!.port;
    const agent = new DiscoveryAgent({
      namespaces: { 'svc.cluster.local': { via: 'dns', port, family: 4 } },
      dns: { servers: [bind.server], timeout: 500, tries: 1, search: K8S_SEARCH, ndots: 5 },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const response = await request('http://orders/orders/42', { dispatcher: agent });
        expect(response.statusCode).toBe(200);
        await response.body.text();
      }
      const seen = fleet.servers.flatMap((s) => s.seen);
      expect(seen.map((s) => s.host)).toEqual(['orders', 'orders', 'orders', 'orders']);
      expect(fleet.servers.every((s) => s.seen.length > 0)).toBe(true);
    } finally {
      await agent.close();
    }
  });
});

describe('ECS-style short names (search myapp.local)', () => {
  test('`inventory` is inventory.myapp.local under a namespace rule for myapp.local', async () => {
    const d = discovery({ namespaces: { 'myapp.local': { via: 'dns', port: 8080 } }, dns: { search: ['myapp.local'], ndots: 1 } });
    try {
      expect(await d.resolve('inventory')).toMatchObject([{ address: '127.0.0.47', port: 8080 }]);
    } finally {
      await d.close();
    }
  });
});

describe('failures', () => {
  test('a short name found under no search domain: NOT_FOUND naming every name tried and where the list comes from', async () => {
    const d = discovery({ namespaces: { 'svc.cluster.local': { via: 'dns', family: 4 } } });
    try {
      const error = (await d.resolve('nosuch').catch((e: unknown) => e)) as Error & { code: string };
      expect(error.code).toBe('SIGNPOST_ERR_NOT_FOUND');
      expect(error.message).toMatch(
        /nosuch was not found under any name of the search list: tried nosuch\.default\.svc\.cluster\.local \(does not exist\), nosuch\.svc\.cluster\.local .*nosuch .*dns\.search/,
      );
    } finally {
      await d.close();
    }
  });

  test('a short name with no search list at all says so', async () => {
    const d = new Discovery({ dns: { servers: [bind.server], timeout: 500, tries: 1 } });
    try {
      const error = (await d.resolve('orders').catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/orders is a short name and no search list is set: call it by its full name, or set dns\.search/);
    } finally {
      await d.close();
    }
  });

  test('a search domain whose server fails ends the search with that failure: traffic never moves to another name on a passing fault', async () => {
    const d = discovery({ dns: { search: ['broken.local', 'default.svc.cluster.local'], ndots: 1 }, unlisted: 'dns' });
    try {
      await expect(d.resolve('orders')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE', message: expect.stringMatching(/SERVFAIL/) });
    } finally {
      await d.close();
    }
  });
});
