/**
 * `signpost watch` (in-process, but for a real SIGTERM): instances joining and leaving a bind9
 * zone changed live with nsupdate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bind9 } from '../fixtures/bind9.ts';
import { assertBuilt, runCli, runMain } from './helpers.ts';

const ZONE = 'watch.test';
let dns: Bind9;

beforeAll(async () => {
  dns = await Bind9.start({ zones: { [ZONE]: ['api 1 IN A 127.0.7.2', 'api 1 IN A 127.0.7.3', 'quiet 1 IN A 127.0.7.9'].join('\n') } });
});

afterAll(async () => {
  await dns?.close();
});

describe('signpost watch', () => {
  it('shows an instance joining and one leaving, then ends after --changes 2', async () => {
    let step = 0;
    const result = await runMain(['watch', `api.${ZONE}`, '--server', dns.server, '--port', '8080', '--interval', '200', '--changes', '2'], {
      onStdout: (soFar) => {
        if (step === 0 && /api\.watch\.test: 2 instances/.test(soFar)) {
          step = 1;
          void dns.update([`update add api.${ZONE} 1 A 127.0.7.4`]);
        } else if (step === 1 && /\+ 127\.0\.7\.4:8080/.test(soFar)) {
          step = 2;
          void dns.update([`update delete api.${ZONE} A 127.0.7.2`]);
        }
      },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`watching api.${ZONE} via dns (A/AAAA records) from ${dns.server}, every 200 ms; Ctrl-C to stop`);
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} {2}api\.watch\.test: 2 instances: 127\.0\.7\.2:8080, 127\.0\.7\.3:8080$/);
    expect(result.stdout).toMatch(/^\S+ {2}\+ 127\.0\.7\.4:8080 {2}→ 3 instances: /m);
    expect(result.stdout).toMatch(/^\S+ {2}- 127\.0\.7\.2:8080 {2}→ 2 instances: 127\.0\.7\.3:8080, 127\.0\.7\.4:8080$/m);
    expect(result.stdout).toMatch(/^stopped after 2 changes in \d+ polls$/m);
    // Stopping is not a change: nothing after the two changes but the summary.
    expect(lines.filter((l) => /^\S+ {2}[+-] /.test(l))).toHaveLength(2);
    expect(result.stdout).not.toMatch(/→ 0 instances/);
  });

  it('--polls N ends on a stable name, with no change and no "everything removed" at the end', async () => {
    const result = await runMain(['watch', `quiet.${ZONE}`, '--server', dns.server, '--interval', '200', '--polls', '3']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/ {2}quiet\.watch\.test: 1 instance: 127\.0\.7\.9$/);
    expect(lines[2]).toBe('stopped after 0 changes in 3 polls');

    const json = await runMain(['watch', `quiet.${ZONE}`, '--server', dns.server, '--interval', '200', '--polls', '2', '--json']);
    expect(json.code).toBe(0);
    const events = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; changes?: number; polls?: number });
    expect(events.map((e) => e.event)).toEqual(['instances', 'stopped']);
    expect(events[1]).toMatchObject({ changes: 0, polls: 2 });
  });

  it('--polls 1 stops after the first answer', async () => {
    const result = await runMain(['watch', `quiet.${ZONE}`, '--server', dns.server, '--polls', '1']);
    expect(result.code).toBe(0);
    expect(result.stdout.trimEnd().split('\n').at(-1)).toBe('stopped after 0 changes in 1 poll');
  });

  it('ends cleanly on SIGTERM (the built bin, as a process)', async () => {
    assertBuilt();
    let sent = false;
    const result = await runCli(['watch', `quiet.${ZONE}`, '--server', dns.server, '--interval', '200', '--json'], {
      onStdout: (soFar, child) => {
        if (!sent && soFar.includes('"event":"instances"')) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    const first = JSON.parse(result.stdout.split('\n')[0]!) as { event: string; name: string; instances: { address: string }[] };
    expect(first).toMatchObject({ event: 'instances', name: `quiet.${ZONE}`, instances: [{ address: '127.0.7.9' }] });
  });

  it('says when the registry stops answering, and that it still serves what it knew', async () => {
    let state = 0;
    try {
      const result = await runMain(['watch', `quiet.${ZONE}`, '--server', dns.server, '--interval', '200', '--timeout', '200'], {
        onStdout: (soFar, stop) => {
          if (state === 0 && /quiet\.watch\.test: 1 instance/.test(soFar)) {
            state = 1;
            void dns.pause();
          } else if (state === 1 && /^\S+ {2}! /m.test(soFar)) {
            state = 2;
            dns.resume();
            stop();
          }
        },
      });
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^\\S+  ! DNS query for A quiet\\.watch\\.test from ${dns.server.replace(/\./g, '\\.')} failed: .*\\(still serving the 1 instances known\\)$`, 'm'));
    } finally {
      dns.resume();
    }
  });

  it('keeps watching a name that does not exist yet, and shows it appear', async () => {
    let added = false;
    const result = await runMain(['watch', `later.${ZONE}`, '--server', dns.server, '--interval', '200', '--changes', '1'], {
      onStdout: (soFar) => {
        if (!added && /later\.watch\.test does not exist/.test(soFar)) {
          added = true;
          void dns.update([`update add later.${ZONE} 1 A 127.0.7.5`]);
        }
      },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^\S+ {2}! DNS name later\.watch\.test does not exist/m);
    expect(result.stdout).toMatch(/^\S+ {2}\+ 127\.0\.7\.5 {2}→ 1 instance: 127\.0\.7\.5$/m);
  });
});
