import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dnsSettings, DnsClient } from '../../src/dns/client.ts';
import { parseResolvConf, readResolvConf, searchCandidates } from '../../src/dns/resolv-conf.ts';
import { Discovery } from '../../src/discovery.ts';

const noEnv = { env: {}, hostname: 'host' };

describe('parseResolvConf (glibc rules)', () => {
  test('nameservers: at most three, IPv6 bracketed, zone ids left out', () => {
    const conf = parseResolvConf(
      ['nameserver 10.0.0.2', 'nameserver fe80::1%eth0', 'nameserver fd00::53', 'nameserver 10.0.0.3', 'nameserver 10.0.0.4'].join('\n'),
      noEnv,
    );
    expect(conf.nameservers).toEqual(['10.0.0.2', '[fd00::53]', '10.0.0.3']);
  });

  test('no nameserver: the one on 127.0.0.1', () => {
    expect(parseResolvConf('', noEnv).nameservers).toEqual(['127.0.0.1']);
  });

  test('search and domain: the last one wins; trailing dots and case dropped; duplicates once', () => {
    expect(parseResolvConf('search a.local B.local.\ndomain c.local', noEnv).search).toEqual(['c.local']);
    expect(parseResolvConf('domain c.local\nsearch a.local B.local. a.local', noEnv).search).toEqual(['a.local', 'b.local']);
  });

  test('without search or domain, the domain of the host name', () => {
    expect(parseResolvConf('', { env: {}, hostname: 'web-1.corp.example' }).search).toEqual(['corp.example']);
    expect(parseResolvConf('', { env: {}, hostname: 'web-1' }).search).toEqual([]);
  });

  test('options: ndots (at most 15), timeout (s → ms, at most 30 s), attempts (at most 5), rotate, no-tld-query; unknown ones ignored', () => {
    const conf = parseResolvConf('options ndots:5 timeout:3 attempts:4 rotate edns0 single-request no-tld-query', noEnv);
    expect(conf).toMatchObject({ ndots: 5, timeout: 3000, attempts: 4, rotate: true, noTldQuery: true });
    expect(parseResolvConf('options ndots:40 timeout:99 attempts:9', noEnv)).toMatchObject({ ndots: 15, timeout: 30_000, attempts: 5 });
    expect(parseResolvConf('options ndots:x timeout:', noEnv)).toMatchObject({ ndots: 1, timeout: undefined, attempts: undefined, rotate: false });
  });

  test('comments and junk are ignored', () => {
    const conf = parseResolvConf('# nameserver 1.1.1.1\n; search nope\nnameserver 10.0.0.2 # the VPC resolver\n  nameserver 9.9.9.9\nbogus line\n', noEnv);
    expect(conf.nameservers).toEqual(['10.0.0.2']);
  });

  test('LOCALDOMAIN replaces the search list and RES_OPTIONS adds options, as for getaddrinfo; the source says so', () => {
    const conf = parseResolvConf('search a.local\noptions ndots:2', { env: { LOCALDOMAIN: 'x.local y.local', RES_OPTIONS: 'ndots:3 rotate' }, hostname: 'h' });
    expect(conf).toMatchObject({ search: ['x.local', 'y.local'], ndots: 3, rotate: true });
    expect(conf.source).toBe('/etc/resolv.conf + LOCALDOMAIN + RES_OPTIONS');
  });

  test('a missing file is glibc’s defaults', () => {
    const conf = readResolvConf('/nonexistent/resolv.conf', noEnv);
    expect(conf).toMatchObject({ nameservers: ['127.0.0.1'], search: [], ndots: 1, source: '/nonexistent/resolv.conf' });
  });
});

describe('searchCandidates', () => {
  const k8s = { search: ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], ndots: 5 };

  test('fewer dots than ndots: the search list first, then the name as it is', () => {
    expect(searchCandidates('orders', k8s)).toEqual([
      'orders.default.svc.cluster.local',
      'orders.svc.cluster.local',
      'orders.cluster.local',
      'orders',
    ]);
  });

  test('at least ndots dots: the name as it is first', () => {
    expect(searchCandidates('api.example.com', { search: ['corp.local'], ndots: 1 })).toEqual(['api.example.com', 'api.example.com.corp.local']);
  });

  test('no-tld-query: a single label is never asked as it is', () => {
    expect(searchCandidates('orders', { search: ['a.local'], ndots: 1, noTldQuery: true })).toEqual(['orders.a.local']);
    expect(searchCandidates('orders.x', { search: ['a.local'], ndots: 2, noTldQuery: true })).toEqual(['orders.x.a.local', 'orders.x']);
  });
});

describe('dns options: resolv.conf when dns.servers is not given', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'signpost-resolvconf-'));
    file = join(dir, 'resolv.conf');
    await writeFile(file, 'nameserver 127.0.0.53\nnameserver ::1\nsearch svc.local\noptions ndots:2 timeout:1 attempts:3 rotate\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('servers, search, ndots, timeout, attempts and rotate come from the file', () => {
    const settings = dnsSettings({ resolvConf: file });
    expect(settings.servers.map((s) => s.label)).toEqual(['127.0.0.53', '[::1]']);
    expect(settings).toMatchObject({ search: ['svc.local'], ndots: 2, timeout: 1000, tries: 3, rotate: true, source: file });
  });

  test('options given override the file', () => {
    const settings = dnsSettings({ resolvConf: file, search: [], ndots: 1, timeout: 250, tries: 1, rotate: false });
    expect(settings).toMatchObject({ search: [], ndots: 1, timeout: 250, tries: 1, rotate: false });
  });

  test('with dns.servers the file is not read: no search list unless dns.search, ndots 1', () => {
    expect(dnsSettings({ servers: ['127.0.0.1:5353'], resolvConf: file })).toMatchObject({ search: [], ndots: 1, rotate: false, source: 'dns.servers' });
    expect(dnsSettings({ servers: ['127.0.0.1:5353'], search: ['a.local'], ndots: 3 })).toMatchObject({ search: ['a.local'], ndots: 3 });
  });

  test('errors name where the servers came from', async () => {
    const client = new DnsClient(dnsSettings({ resolvConf: file, timeout: 1, tries: 1 }));
    client.close();
    expect(client.servers).toEqual(['127.0.0.53', '[::1]']);
  });
});

describe('validation: every new option has a code for a bad value', () => {
  const code = (dns: unknown): string => {
    try {
      new Discovery({ dns } as never);
    } catch (error) {
      return (error as { code: string }).code;
    }
    return 'accepted';
  };

  test.each([
    [{ search: ['svc.local', 'cluster.local'] }, 'accepted'],
    [{ search: [] }, 'accepted'],
    [{ search: 'svc.local' }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ search: ['bad..name'] }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ search: ['trailing.dot.'] }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ search: [42] }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ ndots: 0 }, 'accepted'],
    [{ ndots: 15 }, 'accepted'],
    [{ ndots: 16 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ ndots: -1 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ ndots: 1.5 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ rotate: true }, 'accepted'],
    [{ rotate: 'yes' }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ randomizeCase: true }, 'accepted'],
    [{ randomizeCase: 1 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ udpMaxQueries: 1 }, 'accepted'],
    [{ udpMaxQueries: 256 }, 'accepted'],
    [{ udpMaxQueries: 0 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ udpMaxQueries: 257 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ udpMaxQueries: 2.5 }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ resolvConf: '/etc/resolv.conf' }, 'accepted'],
    [{ resolvConf: 'resolv.conf' }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ resolvConf: '' }, 'SIGNPOST_ERR_INVALID_ARG'],
    [{ resolvConf: 7 }, 'SIGNPOST_ERR_INVALID_ARG'],
  ])('%j → %s', (dns, expected) => {
    expect(code({ servers: ['127.0.0.1:5353'], ...dns })).toBe(expected);
  });
});
