/**
 * No secret passes through the cache and Discovery: secrets planted wherever they can come from
 * (a credential provider's error, an SDK error echoing the signed request, a resolver's error
 * and its cause, a URL with a query string, a listener's and a balancer's throw) appear in no
 * error message, String(error), stack, util.inspect of the error, cause chain, warning or
 * diagnostics message.
 */
process.env.AWS_EC2_METADATA_DISABLED = 'true';

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { setupServer } from 'msw/node';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ResolutionCache, parseCacheOptions } from '../src/cache.ts';
import { Discovery } from '../src/discovery.ts';
import { ResolveError } from '../src/errors.ts';
import { redactText } from '../src/redact.ts';
import { FakeCloudMap, TEST_REGION } from './fixtures/cloud-map.ts';
import { FakeClock } from './support/fake-clock.ts';

const SECRET = 'wJalrXUtnFEMI-K7MDENG-SECRET-0a1b2c';
const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE-TOKEN-3d4e5f';
const KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const PLANTED = [SECRET, TOKEN, KEY_ID, 'hunter2'];

const CHANNELS = [
  'signpost:resolve:done',
  'signpost:resolve:error',
  'signpost:resolve:stale',
  'signpost:resolve:skipped-instance',
  'signpost:callback:error',
  'signpost:cloudmap:call',
  'signpost:cloudmap:retry',
  'signpost:cloudmap:instance-skipped',
];

let failure: 'credentials' | 'signature' | 'ok' = 'ok';
// The planted access key is one the stand-in's account knows, so the signed call goes through.
const cloudMap = new FakeCloudMap({ accessKeys: [KEY_ID] });
for (const service of ['orders', 'billing', 'payments']) {
  cloudMap.register('myapp.local', service, { id: 'a', attributes: { AWS_INSTANCE_IPV4: '127.0.0.2', AWS_INSTANCE_PORT: '8080' } });
}
cloudMap.respond(() =>
  failure === 'signature'
    ? { type: 'SignatureDoesNotMatch', status: 403, message: `The canonical request was POST / X-Amz-Security-Token:${TOKEN} key ${SECRET}` }
    : undefined,
);
const msw = setupServer(cloudMap.handler);
beforeAll(() => msw.listen({ onUnhandledFrame: 'error' }));
afterAll(() => msw.close());

/** Every text an error exposes: message, String, stack, inspect, and the same down the cause chain. */
function texts(error: unknown, depth = 0): string[] {
  if (error === null || error === undefined || depth > 8) return [];
  const e = error as { message?: unknown; stack?: unknown; cause?: unknown };
  return [String(error), String(e.message), String(e.stack), inspect(error, { depth: 8 }), ...texts(e.cause, depth + 1)];
}

const leaks = (text: string): string[] => PLANTED.filter((secret) => text.includes(secret));

test('secrets planted in every source reach no error, cause, warning or diagnostics message', async () => {
  const published: unknown[] = [];
  const listener = (message: unknown): void => void published.push(message);
  for (const name of CHANNELS) subscribe(name, listener);
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning);
  process.on('warning', onWarning);
  const errors: unknown[] = [];
  try {
    // A credential provider whose error carries the secret (as a misconfigured chain does).
    const discovery = new Discovery({
      namespaces: { 'myapp.local': { via: 'cloudmap' } },
      cloudMap: {
        region: TEST_REGION,
        retries: 0,
        credentials: async () => {
          if (failure === 'credentials') {
            throw new TypeError(`Invalid credentials ${KEY_ID} / ${SECRET} (session ${TOKEN}, password=hunter2)`);
          }
          return { accessKeyId: KEY_ID, secretAccessKey: SECRET, sessionToken: TOKEN };
        },
      },
      cache: { negativeTtl: 1 },
      // A balancer and a listener that throw with secrets in their messages.
      balancer: () => ({
        update() {
          throw new Error(`balancer saw token=${TOKEN}`);
        },
        pick: () => undefined,
      }),
    });
    discovery.onChange(() => {
      throw new Error(`listener with Authorization: Bearer ${TOKEN} and ${SECRET}`);
    });
    try {
      failure = 'credentials';
      await discovery.resolve('orders.myapp.local').catch((e: unknown) => errors.push(e));
      failure = 'signature';
      await discovery.resolve('billing.myapp.local').catch((e: unknown) => errors.push(e));
      failure = 'ok';
      expect(await discovery.resolve('payments.myapp.local')).toHaveLength(1);
    } finally {
      await discovery.close();
    }

    // A resolver error whose message has a URL with a query string and whose cause is foreign.
    const cache = new ResolutionCache(parseCacheOptions({}), new FakeClock(), { onChange() {}, onEvict() {} });
    const entry = cache.entry('direct.local', {
      resolve: () =>
        Promise.reject(
          new ResolveError(`GET https://registry.example/v1/catalog?api_key=${SECRET}&region=x failed; Authorization: Bearer ${TOKEN}`, {
            hostname: 'direct.local',
            cause: Object.assign(new Error(`connect to https://user:hunter2@registry.example failed, secret=${SECRET}`), { code: 'ECONNREFUSED' }),
          }),
        ),
    });
    await cache.ensure(entry);
    errors.push(entry.error);
    cache.close();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    for (const name of CHANNELS) unsubscribe(name, listener);
    process.off('warning', onWarning);
  }

  expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['SIGNPOST_ERR_RESOLVE', 'SIGNPOST_ERR_RESOLVE', 'SIGNPOST_ERR_RESOLVE']);
  expect(published.some((m) => (m as { callback?: string }).callback === 'onChange listener')).toBe(true);
  expect(published.some((m) => (m as { callback?: string }).callback === 'balancer.update')).toBe(true);
  expect(warnings.length).toBeGreaterThan(0);
  expect(errors.flatMap((e) => texts(e)).flatMap(leaks)).toEqual([]);
  expect(published.map((m) => inspect(m, { depth: 8 })).flatMap(leaks)).toEqual([]);
  expect(published.flatMap((m) => texts((m as { error?: unknown }).error)).flatMap(leaks)).toEqual([]);
  expect(warnings.flatMap((w) => [w.message, String(w.stack)]).flatMap(leaks)).toEqual([]);
  // What is kept is still useful: the error names and codes, the URL without its query.
  const direct = errors[2] as Error & { cause: Error & { code?: string } };
  expect(direct.message).toMatch(/https:\/\/registry\.example\/v1\/catalog\?<redacted>/);
  expect(direct.cause.code).toBe('ECONNREFUSED');
});

test('redactText: query strings, URL credentials, key=value secrets, bearer tokens, AWS key ids', () => {
  expect(redactText('https://a.example/x?token=abc#frag and http://u:p@h/')).toBe('https://a.example/x?<redacted> and http://<redacted>@h/');
  expect(redactText('password=hunter2; api_key: "k1"; X-Amz-Security-Token: t')).toBe(
    'password=<redacted>; api_key: "<redacted>"; X-Amz-Security-Token: <redacted>',
  );
  expect(redactText(`Authorization: Bearer abc.def.ghi, key ${KEY_ID}`)).toBe('Authorization: <redacted>, key <redacted>');
  expect(redactText('orders.myapp.local has no instances: check its tasks')).toBe('orders.myapp.local has no instances: check its tasks');
});
