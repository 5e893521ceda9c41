/** Closing a Discovery ends its onChange stream; it is not a change (every instance removed). */
import { describe, expect, it } from 'vitest';
import { Discovery } from '../src/discovery.ts';
import type { InstancesChange } from '../src/discovery.ts';

describe('Discovery.close()', () => {
  it('fires no onChange: the names did not change, the watching ended', async () => {
    const discovery = new Discovery({
      services: {
        'api.close.test': { via: 'static', instances: [{ address: '127.0.0.2', port: 8080 }, { address: '127.0.0.3', port: 8080 }] },
        'web.close.test': { via: 'static', instances: [{ address: '127.0.0.4', port: 8080 }] },
      },
    });
    const changes: InstancesChange[] = [];
    discovery.onChange((change) => changes.push(change));
    await discovery.resolve('api.close.test');
    await discovery.resolve('web.close.test');
    expect(changes.map((c) => [c.name, c.added.length, c.removed.length])).toEqual([
      ['api.close.test', 2, 0],
      ['web.close.test', 1, 0],
    ]);

    await discovery.close();
    expect(changes).toHaveLength(2);
  });
});
