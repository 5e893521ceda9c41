import { describe, expect, it } from 'vitest';
import { instanceKey } from '../src/instance.ts';
import { LiveInstances } from '../src/live.ts';

describe('LiveInstances', () => {
  it('answers by key, counting the names that serve each instance', () => {
    const live = new LiveInstances();
    const a = { address: '10.0.0.1', port: 8080 };
    live.add(a);
    live.add(a);
    expect(live.has('10.0.0.1:8080')).toBe(true);
    expect(live.has('10.0.0.1:8081')).toBe(false);
    expect(live.has('10.0.0.1')).toBe(false);
    expect(live.has('10.0.0.1:08080')).toBe(false);
    expect(live.remove(a)).toBe(false);
    expect(live.has('10.0.0.1:8080')).toBe(true);
    expect(live.remove(a)).toBe(true);
    expect(live.has('10.0.0.1:8080')).toBe(false);
    expect([...live.keys()]).toEqual([]);
  });

  it('keeps several ports of one address apart', () => {
    const live = new LiveInstances();
    const ports = [80, 81, undefined, 82];
    for (const port of ports) live.add({ address: '10.0.0.2', port });
    live.add({ address: '10.0.0.2', port: 81 });
    expect([...live.keys()].sort()).toEqual(['10.0.0.2', '10.0.0.2:80', '10.0.0.2:81', '10.0.0.2:82']);
    expect(live.remove({ address: '10.0.0.2', port: 81 })).toBe(false);
    expect(live.remove({ address: '10.0.0.2', port: 81 })).toBe(true);
    expect(live.has('10.0.0.2:81')).toBe(false);
    expect(live.has('10.0.0.2:80')).toBe(true);
    expect(live.has('10.0.0.2')).toBe(true);
    for (const port of [80, undefined, 82]) expect(live.remove({ address: '10.0.0.2', port })).toBe(true);
    expect([...live.keys()]).toEqual([]);
  });

  it('reads IPv6 keys as instanceKey writes them', () => {
    const live = new LiveInstances();
    const withPort = { address: 'fd00::1', port: 443 };
    const bare = { address: 'fd00::2', port: undefined };
    live.add(withPort);
    live.add(bare);
    expect(live.has(instanceKey(withPort))).toBe(true);
    expect(live.has('[fd00::1]:443')).toBe(true);
    expect(live.has('fd00::1:443')).toBe(false);
    expect(live.has('[fd00::2]')).toBe(true);
    expect(live.has('fd00::2')).toBe(false);
    expect(live.has('[fd00::1]443')).toBe(false);
    expect([...live.keys()].sort()).toEqual(['[fd00::1]:443', '[fd00::2]']);
  });

  it('counts past what one packed number holds', () => {
    const live = new LiveInstances();
    const a = { address: '10.0.0.3', port: 65535 };
    const n = 40_000;
    for (let i = 0; i < n; i++) live.add(a);
    for (let i = 0; i < n - 1; i++) expect(live.remove(a)).toBe(false);
    expect(live.has('10.0.0.3:65535')).toBe(true);
    expect(live.remove(a)).toBe(true);
    expect(live.has('10.0.0.3:65535')).toBe(false);
  });
});
