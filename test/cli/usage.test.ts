/** Bad arguments exit 2 with a usage line; a registry that can't be reached is one clear line, exit 1. */
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CLI, runCli } from './helpers.ts';
import { readFileSync } from 'node:fs';

/** A UDP socket on loopback that reads queries and never answers: a DNS server behind a firewall. */
let silent: Socket;
let silentPort: number;

beforeAll(async () => {
  assertBuilt();
  silent = createSocket('udp4');
  silent.on('message', () => {});
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
  silentPort = silent.address().port;
});

afterAll(() => {
  silent?.close();
});

describe('signpost usage', () => {
  it('is the package bin, with a node shebang', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin.signpost).toBe('./dist/cli/main.js');
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it.each([
    [[], /^usage: signpost <resolve\|watch\|check>/m],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['resolve'], /missing <name>/],
    [['resolve', 'a.local', 'b.local'], /expected one <name>/],
    [['resolve', 'not a name'], /is not a DNS name/],
    [['resolve', 'a.local', '--via', 'carrier-pigeon'], /--via must be one of dns, srv, cloudmap/],
    [['resolve', 'a.local', '--server', 'dns.example.com'], /--server must be "ip", "ip:port"/],
    [['resolve', 'a.local', '--port', '70000'], /--port must be a whole number from 1 to 65535/],
    [['resolve', 'a.local', '--bogus'], /Unknown option '--bogus'/],
    [['resolve', 'a.local', '--srv', '_http._tcp.a.local'], /--srv goes with --via srv/],
    [['resolve', 'a.local', '--via', 'cloudmap', '--endpoint', 'ftp://x'], /--endpoint must be an http/],
    [['resolve', 'local', '--via', 'cloudmap'], /needs <service>\.<namespace>/],
    [['watch', 'a.local', '--interval', 'soon'], /--interval must be a whole number/],
    [['watch', 'a.local', '--count', '0'], /--count must be a whole number from 1/],
    [['check'], /missing <config\.json>/],
  ])('signpost %j exits 2', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/^usage: signpost /m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('--help prints usage on stdout and exits 0', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/signpost check <config\.json>/);
    for (const command of ['resolve', 'watch', 'check']) {
      const result = await runCli([command, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^usage: signpost ${command} `));
    }
  });

  it('a DNS server that does not answer: one line naming the name, the server and what to check', async () => {
    const server = `127.0.0.1:${silentPort}`;
    const result = await runCli(['resolve', 'orders.myapp.local', '--server', server, '--timeout', '200']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^signpost resolve: DNS query for A+ orders\.myapp\.local from 127\.0\.0\.1:\d+ failed: no answer within .*check that the servers are reachable/);
  });

  it('a DNS server that is not there (refused): one line, exit 1, for resolve and watch', async () => {
    // Bind and close to get a port nothing listens on.
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    const port = socket.address().port;
    await new Promise<void>((resolve) => socket.close(() => resolve()));

    for (const command of ['resolve', 'watch']) {
      const result = await runCli([command, 'orders.myapp.local', '--via', 'srv', '--server', `127.0.0.1:${port}`, '--timeout', '200']);
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^signpost ${command}: .*orders\\.myapp\\.local from 127\\.0\\.0\\.1:${port} failed: .*check`));
    }
  });

  it('a Cloud Map endpoint that is not there: one line, exit 1', async () => {
    const result = await runCli(['resolve', 'orders.myapp.local', '--via', 'cloudmap', '--endpoint', 'http://127.0.0.1:1', '--timeout', '300'], {
      env: { SIGNPOST_DEBUG: '' },
    });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^signpost resolve: orders\.myapp\.local: DiscoverInstances of Cloud Map service "orders" in namespace "myapp\.local" failed .*check that this process can reach the Cloud Map endpoint/);
  });
});
