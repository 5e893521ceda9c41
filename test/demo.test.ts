/**
 * `npm run demo` is `npm run build && node demo/main.ts`: this runs the second half as a child
 * process with stdout piped (no TTY: plain lines), as `npm test` does after its build.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../demo/main.ts', import.meta.url));

function runDemo(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { SIGNPOST_STATIC: _s, SIGNPOST_ZONE: _z, ...env } = process.env;
  const child = spawn(process.execPath, [DEMO], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('npm run demo', () => {
  it('runs every scene without a failed request, prints the summary, exits 0 and leaves nothing listening', { timeout: 120_000 }, async () => {
    const { code, stdout, stderr } = await runDemo();
    expect(stderr).toBe('');
    expect(stdout, stdout).not.toContain('✗');
    expect(code, stdout).toBe(0);
    // No live-progress escapes when stdout is not a terminal.
    expect(stdout).not.toContain('\r');

    const summary = stdout.slice(stdout.indexOf('\nSummary\n'));
    expect(summary).toMatch(/^scene\s+requests\s+failed\s+instances\s+zones a \/ b \/ c\s+result$/m);
    // The baseline is the problem the demo shows, never marked as a success.
    expect(summary).toMatch(/^first IP \(plain undici\)\s+300\s+0\s+1 of 6\s+a 100% \/ b 0% \/ c 0%\s+the problem$/m);
    expect(stdout).toMatch(/^ {2}⚠ the problem: 127\.0\.0\.\d took 100% of the traffic; 5 instances idle$/m);
    expect(stdout).not.toMatch(/✓ 127\.0\.0\.\d took 100% of the traffic/);
    expect(summary).toMatch(/^signpost round-robin\s+300\s+0\s+6 of 6\s+a 33% \/ b 33% \/ c 33%\s+ok$/m);
    expect(summary).toMatch(/^zone affinity \(us-east-1a\)\s+300\s+0\s+2 of 6\s+a 100% \/ b 0% \/ c 0%\s+ok$/m);
    expect(summary).toMatch(/^instance killed mid-run\s+600\s+0\s+.*\s+ok$/m);
    expect(summary).toMatch(/^rolling deployment\s+\d+\s+0\s+3 blue → 3 green\s+.*\s+ok$/m);
    expect(summary).toMatch(/^rename: alias 'union'\s+300\s+0\s+6 of 6\s+.*\s+ok$/m);
    expect(summary).toMatch(/^rename: alias 'redirect'\s+300\s+0\s+4 of 6\s+.*\s+ok$/m);
    expect(summary).toMatch(/^\d+ requests in [\d.]+s; 0 failed through signpost\.$/m);

    // The fleet is gone: its instances refuse connections now.
    const port = Number(/port (\d+)$/m.exec(stdout)?.[1]);
    expect(port).toBeGreaterThan(0);
    for (const n of [2, 3, 4, 5, 6, 7]) expect(await refused(`127.0.0.${n}`, port)).toBe(true);
    const cloudMapPort = Number(/Cloud Map API\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
    expect(await refused('127.0.0.1', cloudMapPort)).toBe(true);
  });
});
