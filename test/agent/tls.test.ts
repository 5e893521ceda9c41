import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscoveryAgent, type AttemptsInfo } from '../../src/agent/index.ts';
import { Fleet, TestCa } from '../fixtures/fleet.ts';

const NAME = 'secure.test.local';

describe('HTTPS instances', () => {
  let ca: TestCa;
  let good: Fleet;
  let wrong: Fleet;

  beforeAll(async () => {
    ca = await TestCa.create();
    good = await Fleet.start(2, { tls: await ca.issue(NAME) });
    wrong = await Fleet.start(1, { tls: await ca.issue('other.test.local'), firstOctet: 10 });
  });

  afterAll(async () => {
    await good.close();
    await wrong.close();
    await ca.remove();
  });

  it('verifies each instance against the service name, with the CA given in connect', async () => {
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: good.instances } },
      connect: { ca: ca.cert },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const { statusCode, body } = await request(`https://${NAME}/tls`, { dispatcher: agent });
        expect(statusCode).toBe(200);
        await body.text();
      }
      expect(good.counts).toEqual([2, 2]);
      expect(good.servers[0]!.seen[0]!.host).toBe(NAME);
    } finally {
      await agent.close();
    }
  });

  it('fails with the TLS error in the attempts when the certificate is for another name', async () => {
    const agent = new DiscoveryAgent({
      services: { [NAME]: { via: 'static', instances: wrong.instances } },
      connect: { ca: ca.cert },
      retry: { retries: 1, minDelay: 1, maxDelay: 2 },
    });
    try {
      const error = (await request(`https://${NAME}/tls`, { dispatcher: agent }).catch((e: unknown) => e)) as Error & AttemptsInfo & { code?: string };
      expect(error.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      expect(error.attempts.length).toBeGreaterThanOrEqual(1);
      for (const attempt of error.attempts) {
        expect((attempt.error as { code?: string }).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      }
      expect(wrong.servers[0]!.count).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('fails when the CA is not trusted: no silent fallback to an unchecked connection', async () => {
    const agent = new DiscoveryAgent({ services: { [NAME]: { via: 'static', instances: good.instances } } });
    try {
      const error = (await request(`https://${NAME}/tls`, { dispatcher: agent }).catch((e: unknown) => e)) as Error & { code?: string };
      expect(error.code).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    } finally {
      await agent.close();
    }
  });
});
