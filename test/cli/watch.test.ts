/** `signpost watch`: instances joining and leaving a bind9 zone changed live with nsupdate. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bind9 } from '../support/bind9.ts';
import { assertBuilt, runCli } from './helpers.ts';

const ZONE = 'watch.test';
let dns: Bind9;

beforeAll(async () => {
  assertBuilt();
  dns = await Bind9.start({ zones: { [ZONE]: ['api 1 IN A 127.0.7.2', 'api 1 IN A 127.0.7.3', 'quiet 1 IN A 127.0.7.9'].join('\n') } });
});

afterAll(async () => {
  await dns?.close();
});

describe('signpost watch', () => {
  it('shows an instance joining and one leaving, then ends after --count changes', async () => {
    let step = 0;
    const result = await runCli(['watch', `api.${ZONE}`, '--server', dns.server, '--port', '8080', '--interval', '200', '--count', '2'], {
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
    expect(result.stdout).toMatch(/^stopped after 2 changes$/m);
  });

  it('ends cleanly on SIGTERM', async () => {
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
      const result = await runCli(['watch', `quiet.${ZONE}`, '--server', dns.server, '--interval', '200', '--timeout', '200'], {
        onStdout: (soFar, child) => {
          if (state === 0 && /quiet\.watch\.test: 1 instance/.test(soFar)) {
            state = 1;
            void dns.pause();
          } else if (state === 1 && /^\S+ {2}! /m.test(soFar)) {
            state = 2;
            dns.resume();
            child.kill('SIGTERM');
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
    const result = await runCli(['watch', `later.${ZONE}`, '--server', dns.server, '--interval', '200', '--count', '1'], {
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
