/**
 * What `npm pack` would publish (`npm pack --dry-run --json`, offline; `--ignore-scripts` so
 * prepack does not rebuild dist/ under the other tests' feet): the entry points, the licence, no
 * sources or tests, source maps that carry their sources, and README links that resolve inside
 * the package.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  license: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, Record<string, string>>;
  dependencies: Record<string, string>;
  sideEffects: string[] | boolean;
};

let files: Set<string>;

beforeAll(async () => {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--offline'], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [packed] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
  files = new Set(packed!.files.map((f) => f.path));
}, 60_000);

/** `./dist/index.js` → `dist/index.js` */
const packPath = (path: string): string => posix.normalize(path);

describe('the packed tarball', () => {
  it('holds the entry points, the types and the command', () => {
    const entries = [pkg.main, pkg.types, ...Object.values(pkg.bin), ...Object.values(pkg.exports).flatMap((e) => Object.values(e))];
    for (const entry of entries) expect(files, entry).toContain(packPath(entry));
    expect(files).toContain('dist/assert-node.js');
    for (const effect of Array.isArray(pkg.sideEffects) ? pkg.sideEffects : []) expect(files, effect).toContain(packPath(effect));
  });

  it('holds the compiled library and the documents, nothing else', () => {
    const outside = [...files].filter((f) => !f.startsWith('dist/')).sort();
    expect(outside).toEqual([
      'LICENSE',
      'README.md',
      'bench/README.md',
      'bench/fleet-health.json',
      'bench/fleet-health.svg',
      'bench/fleet.json',
      'bench/fleet.svg',
      'bench/requests.json',
      'bench/requests.svg',
      'bench/results.json',
      'bench/results.svg',
      'package.json',
    ]);
    const dist = [...files].filter((f) => f.startsWith('dist/'));
    expect(dist.filter((f) => !/\.(js|d\.ts|js\.map)$/.test(f))).toEqual([]);
    // No tests, demo or bench code compiled into it.
    expect(dist.filter((f) => /^dist\/(test|demo|bench|src)\//.test(f))).toEqual([]);
  });

  it('has an MIT licence, as package.json says', () => {
    expect(pkg.license).toBe('MIT');
    const license = readFileSync(join(root, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) the signpost authors\n/);
  });

  it('ships source maps with their sources inside (src/ is not packed)', () => {
    const maps = [...files].filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[]; sourcesContent?: Array<string | null> };
      expect(sourcesContent, map).toHaveLength(sources.length);
      for (const content of sourcesContent!) expect(typeof content, map).toBe('string');
    }
    expect([...files].filter((f) => f.startsWith('src/'))).toEqual([]);
  });

  it('has README links that resolve to packed files', () => {
    for (const doc of ['README.md', 'bench/README.md']) {
      const text = readFileSync(join(root, doc), 'utf8');
      const links = [...text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)[^)]*\)/g)].map((m) => m[1]!);
      const local = links.filter((l) => !/^[a-z]+:/i.test(l) && !l.startsWith('#'));
      expect(local.length, doc).toBeGreaterThan(0);
      for (const link of local) {
        const target = posix.normalize(posix.join(posix.dirname(doc), link.split('#')[0]!));
        expect(files, `${doc} links to ${link}`).toContain(target);
      }
    }
  });

  it('keeps the benchmark peers out of the library dependencies', () => {
    const bench = JSON.parse(readFileSync(join(root, 'bench/package.json'), 'utf8')) as { private: boolean; dependencies: Record<string, string> };
    expect(bench.private).toBe(true);
    for (const peer of Object.keys(bench.dependencies)) expect(pkg.dependencies).not.toHaveProperty(peer);
  });
});
