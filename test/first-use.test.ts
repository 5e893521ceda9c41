/**
 * What a first user does with the built package, from a project of their own (a temp directory
 * with `node_modules/signpost` linked to this repository, so `signpost` resolves through the
 * package's `exports`): `require()` from CommonJS, `import` from ESM, an older Node, and the
 * error a failed `fetch` carries.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent, SignpostError } from '../src/index.ts';
import { isSupportedNode, MIN_NODE_VERSION } from '../src/node-version.ts';

const root = join(import.meta.dirname, '..');
const run = promisify(execFile);
let project: string;

const CONSUMER = (load: string) => `${load}
const discovery = new Discovery({
  services: { 'api.first-use.test': { via: 'static', instances: [{ address: '127.0.0.2', port: 8080 }, { address: '127.0.0.3', port: 8080 }] } },
});
discovery.resolve('api.first-use.test').then(async (instances) => {
  await discovery.close();
  console.log(JSON.stringify({ addresses: instances.map((i) => i.address), agent: typeof DiscoveryAgent, error: SignpostError.name }));
});
`;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  project = await mkdtemp(join(tmpdir(), 'signpost-first-use-'));
  await mkdir(join(project, 'node_modules'));
  await symlink(root, join(project, 'node_modules', 'signpost'), 'dir');
  // A fresh `npm init` project: CommonJS.
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'first-use', version: '1.0.0', type: 'commonjs' }));
  await writeFile(join(project, 'app.js'), CONSUMER("const { Discovery, DiscoveryAgent, SignpostError } = require('signpost');"));
  await writeFile(join(project, 'app.mjs'), CONSUMER("import { Discovery, DiscoveryAgent, SignpostError } from 'signpost';"));
  await writeFile(join(project, 'import.cjs'), "import('signpost').then(() => console.log('loaded'), (e) => { console.error(e.code, e.message); process.exitCode = 1; });\n");
  await writeFile(join(project, 'import-grpc.cjs'), "import('signpost/grpc').then(() => console.log('loaded'), (e) => { console.error(e.code, e.message); process.exitCode = 1; });\n");
  await writeFile(join(project, 'require.cjs'), "try { require('signpost'); console.log('loaded'); } catch (e) { console.error(e.code, e.message); process.exitCode = 1; }\n");
});

afterAll(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

const EXPECTED = JSON.stringify({ addresses: ['127.0.0.2', '127.0.0.3'], agent: 'function', error: 'SignpostError' });

describe('a first project using signpost', () => {
  it('require()s it from CommonJS (a fresh npm init project), without top-level await or warnings', async () => {
    const { stdout, stderr } = await run(process.execPath, ['app.js'], { cwd: project });
    expect(stderr).toBe('');
    expect(stdout.trim()).toBe(EXPECTED);
  });

  it('imports it from ESM', async () => {
    const { stdout, stderr } = await run(process.execPath, ['app.mjs'], { cwd: project });
    expect(stderr).toBe('');
    expect(stdout.trim()).toBe(EXPECTED);
  });

  it("gets fetch's TypeError('fetch failed') with signpost's error in err.cause", async () => {
    // A DNS server port that nothing listens on: the registry cannot answer.
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    const port = socket.address().port;
    await new Promise<void>((resolve) => socket.close(() => resolve()));

    const agent = new DiscoveryAgent({
      services: { 'orders.first-use.test': { via: 'dns', port: 8080 } },
      dns: { servers: [`127.0.0.1:${port}`], timeout: 200, tries: 1 },
    });
    try {
      const error = await fetch('http://orders.first-use.test/', { dispatcher: agent } as unknown as RequestInit).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toBe('fetch failed');
      const cause = (error as Error).cause;
      expect(cause).toBeInstanceOf(SignpostError);
      expect(cause).toMatchObject({ code: 'SIGNPOST_ERR_RESOLVE', hostname: 'orders.first-use.test' });
    } finally {
      await agent.close();
    }
  });
});

/** A Node older than signpost supports, if this machine has one (the system's, often). */
function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/opt/homebrew/bin/node']) {
    if (!existsSync(candidate)) continue;
    const result = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 10_000 });
    const version = result.stdout?.trim();
    if (result.status === 0 && version && !isSupportedNode(version)) return candidate;
  }
  return undefined;
}

describe('the supported Node versions', () => {
  it('are the engines of package.json', () => {
    const { engines } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(engines.node).toBe(`>=${MIN_NODE_VERSION.replace(/\.0$/, '')}`);
    expect(isSupportedNode(process.versions.node)).toBe(true);
  });

  it.each([
    ['22.19.0', true],
    ['v22.19.0', true],
    ['22.20.1', true],
    ['24.0.0', true],
    ['26.10.0', true],
    ['22.18.9', false],
    ['22.12.0', false],
    ['20.20.2', false],
    ['18.0.0', false],
    ['garbage', false],
  ])('%s is supported: %s', (version, supported) => {
    expect(isSupportedNode(version)).toBe(supported);
  });

  const old = olderNode();
  it.skipIf(old === undefined)(`an older Node (${old ?? 'none on this machine'}) gets a clear error naming the version needed, at import and require, of signpost/grpc too`, async () => {
    for (const script of ['import.cjs', 'require.cjs', 'import-grpc.cjs']) {
      const result = spawnSync(old!, [script], { cwd: project, encoding: 'utf8', timeout: 20_000 });
      expect(result.status, script).toBe(1);
      expect(result.stdout, script).toBe('');
      expect(result.stderr, script).toMatch(/^SIGNPOST_ERR_UNSUPPORTED_NODE signpost needs Node\.js >= 22\.19, but this is Node\.js \d+\.\d+\.\d+ /);
    }
    const cli = spawnSync(old!, [join(root, 'dist/cli/main.js'), 'resolve', 'orders.myapp.local'], { encoding: 'utf8', timeout: 20_000 });
    expect(cli.status).toBe(1);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(/^signpost needs Node\.js >= 22\.19, but this is Node\.js \d+\.\d+\.\d+ \(.*\)\. Run it with a newer Node/);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
  });
});
