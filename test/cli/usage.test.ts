/**
 * Bad arguments exit 2 with signpost's own message and the usage line; `--help` describes every
 * flag; a registry that can't be reached is one clear line, exit 1. In-process (the CLI's
 * `main`), except what only the built bin shows.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECK_COMMAND } from '../../src/cli/check.ts';
import { RESOLVE_COMMAND } from '../../src/cli/resolve.ts';
import { WATCH_COMMAND } from '../../src/cli/watch.ts';
import { assertBuilt, CLI, runCli, runMain, stubCliEnv } from './helpers.ts';

/** A UDP socket on loopback that reads queries and never answers: a DNS server behind a firewall. */
let silent: Socket;
let silentPort: number;

beforeAll(async () => {
  stubCliEnv();
  silent = createSocket('udp4');
  silent.on('message', () => {});
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
  silentPort = silent.address().port;
});

afterAll(() => {
  silent?.close();
  vi.unstubAllEnvs();
});

/** A UDP port nothing listens on. */
async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

describe('signpost usage', () => {
  it('is the package bin, with a node shebang, and exits 2 on bad arguments as a process', async () => {
    assertBuilt();
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin.signpost).toBe('./dist/cli/main.js');
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const help = await runCli(['resolve', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: signpost resolve /);
    const bad = await runCli(['resolve', 'a.local', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^signpost resolve: unknown flag --bogus\n/);
  });

  it.each([
    [[], /^usage: signpost <resolve\|watch\|check>/m],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['resolve'], /^signpost resolve: missing <name>$/m],
    [['resolve', 'a.local', 'b.local'], /expected one <name>/],
    [['resolve', 'not a name'], /"not a name" is not a DNS name/],
    [['resolve', 'a.local', '--via', 'carrier-pigeon'], /--via must be one of dns, srv, cloudmap, got "carrier-pigeon"/],
    [['resolve', 'a.local', '--server', 'dns.example.com'], /--server must be "ip", "ip:port"/],
    [['resolve', 'a.local', '--port', '70000'], /--port must be a whole number from 1 to 65535/],
    [['resolve', 'a.local', '--bogus'], /^signpost resolve: unknown flag --bogus$/m],
    [['resolve', 'a.local', '--prot', '80'], /^signpost resolve: unknown flag --prot \(did you mean --port\?\)$/m],
    [['resolve', 'a.local', '-x'], /^signpost resolve: unknown flag -x$/m],
    [['resolve', 'a.local', '--via'], /^signpost resolve: --via needs a value: --via dns\|srv\|cloudmap$/m],
    [['resolve', 'a.local', '--via', '--json'], /^signpost resolve: --via needs a value: --via dns\|srv\|cloudmap$/m],
    [['resolve', 'a.local', '--json=yes'], /^signpost resolve: --json takes no value, got --json=yes$/m],
    [['resolve', 'a.local', '--via', 'dns', '--via', 'srv'], /^signpost resolve: --via is given more than once$/m],
    [['resolve', 'a.local', '--srv', '_http._tcp.a.local'], /--srv goes with --via srv/],
    [['resolve', 'a.local', '--via', 'cloudmap', '--endpoint', 'ftp://x'], /--endpoint must be an http/],
    [['resolve', 'local', '--via', 'cloudmap'], /needs <service>\.<namespace>/],
    [['watch', 'a.local', '--interval', 'soon'], /--interval must be a whole number/],
    [['watch', 'a.local', '--changes', '0'], /--changes must be a whole number from 1/],
    [['watch', 'a.local', '--polls', '-1'], /--polls needs a value/],
    [['watch', 'a.local', '--count', '1'], /^signpost watch: unknown flag --count$/m],
    [['check'], /missing <config\.json>/],
    [['check', 'x.json', '--scheme', 'ftp'], /--scheme must be http or https, got "ftp"/],
    [['check', 'x.json', '--ca', '/nonexistent/ca.pem'], /--ca: cannot read \/nonexistent\/ca\.pem: ENOENT/],
  ])('signpost %j exits 2', async (args, message) => {
    const result = await runMain(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/^usage: signpost /m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // signpost's words, not parseArgs' (whose unknown-option text ends in an unbalanced quote).
    expect(result.stderr).not.toMatch(/To specify a positional argument|ERR_PARSE_ARGS/);
    for (const line of result.stderr.split('\n')) expect((line.match(/"/g) ?? []).length % 2, line).toBe(0);
  });

  it('--help lists the commands, and each command --help describes every flag', async () => {
    const top = await runMain(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/signpost check <config\.json>/);
    expect(top.stdout).toMatch(/signpost <command> --help describes every flag/);
    for (const spec of [RESOLVE_COMMAND, WATCH_COMMAND, CHECK_COMMAND]) {
      for (const flag of ['--help', '-h']) {
        const result = await runMain([spec.name, flag]);
        expect(result.code).toBe(0);
        expect(result.stderr).toBe('');
        expect(result.stdout).toMatch(new RegExp(`^usage: signpost ${spec.name} `));
        for (const name of Object.keys(spec.flags)) expect(result.stdout, `${spec.name} --${name}`).toMatch(new RegExp(`^ {2}(-h, )?--${name}\\b.* {2}\\S`, 'm'));
      }
    }
    // --help wins over any other mistake on the line.
    expect((await runMain(['watch', '--bogus', '--help'])).code).toBe(0);
  });

  it('--via cloudmap without a region talks about --region', async () => {
    vi.stubEnv('AWS_REGION', undefined);
    vi.stubEnv('AWS_DEFAULT_REGION', undefined);
    try {
      for (const command of ['resolve', 'watch']) {
        const result = await runMain([command, 'orders.myapp.local', '--via', 'cloudmap', '--endpoint', 'http://127.0.0.1:1', '--timeout', '300']);
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(new RegExp(`^signpost ${command}: --via cloudmap needs an AWS region: pass --region \\(such as --region us-east-1\\), or set AWS_REGION$`, 'm'));
        expect(result.stderr).not.toMatch(/cloudMap\.region/);
      }
    } finally {
      vi.stubEnv('AWS_REGION', 'us-east-1');
    }
  });

  it('a DNS server that does not answer: one line naming the name, the server and what to check', async () => {
    const server = `127.0.0.1:${silentPort}`;
    const result = await runMain(['resolve', 'orders.myapp.local', '--server', server, '--timeout', '200']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^signpost resolve: DNS query for A+ orders\.myapp\.local from 127\.0\.0\.1:\d+ failed: no answer within .*check that the servers are reachable/);
  });

  it('a DNS server that is not there (refused): one line, exit 1, for resolve and watch', async () => {
    const port = await closedPort();
    for (const command of ['resolve', 'watch']) {
      const result = await runMain([command, 'orders.myapp.local', '--via', 'srv', '--server', `127.0.0.1:${port}`, '--timeout', '200']);
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^signpost ${command}: .*orders\\.myapp\\.local from 127\\.0\\.0\\.1:${port} failed: .*check`));
    }
  });

  it('a Cloud Map endpoint that is not there: one line, exit 1', async () => {
    const result = await runMain(['resolve', 'orders.myapp.local', '--via', 'cloudmap', '--endpoint', 'http://127.0.0.1:1', '--timeout', '300']);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^signpost resolve: orders\.myapp\.local: DiscoverInstances of Cloud Map service "orders" in namespace "myapp\.local" failed .*check that this process can reach the Cloud Map endpoint/);
  });
});
