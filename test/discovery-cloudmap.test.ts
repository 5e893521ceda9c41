import { afterAll, beforeAll, expect, test } from 'vitest';
import { Discovery } from '../src/discovery.ts';
import { FakeCloudMap } from './support/fake-cloudmap.ts';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

let fake: FakeCloudMap;

beforeAll(async () => {
  fake = await FakeCloudMap.start();
  for (const [i, zone] of ['use1-az1', 'use1-az2'].entries()) {
    fake.register('myapp.local', 'orders', {
      id: `orders-${i}`,
      attributes: { AWS_INSTANCE_IPV4: `127.0.0.${i + 2}`, AWS_INSTANCE_PORT: '8080', AVAILABILITY_ZONE: zone, version: 'v7' },
    });
  }
});

afterAll(async () => {
  await fake?.close();
});

function discovery(): Discovery {
  return new Discovery({
    namespaces: { 'myapp.local': { via: 'cloudmap' } },
    services: { 'billing.example.com': { via: 'cloudmap', namespace: 'myapp.local', service: 'orders' } },
    cloudMap: {
      endpoint: fake.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' },
    },
  });
}

test('a namespace rule maps <service>.<namespace> to Cloud Map, with ports, zones and attributes', async () => {
  const d = discovery();
  try {
    const instances = await d.resolve('orders.myapp.local');
    expect(instances).toMatchObject([
      { id: 'orders-0', address: '127.0.0.2', port: 8080, zone: 'use1-az1', attributes: { version: 'v7' } },
      { id: 'orders-1', address: '127.0.0.3', port: 8080, zone: 'use1-az2', attributes: { version: 'v7' } },
    ]);
    // An exact service entry may point any name at a Cloud Map service.
    expect(await d.resolve('billing.example.com')).toHaveLength(2);
  } finally {
    await d.close();
  }
});

test('a service Cloud Map does not know is SIGNPOST_ERR_NOT_FOUND, and closing leaves nothing running', async () => {
  const d = discovery();
  await expect(d.resolve('payments.myapp.local')).rejects.toMatchObject({
    code: 'SIGNPOST_ERR_NOT_FOUND',
    hostname: 'payments.myapp.local',
  });
  await d.close();
  await expect(d.resolve('orders.myapp.local')).rejects.toMatchObject({ code: 'SIGNPOST_ERR_CLOSED' });
});
