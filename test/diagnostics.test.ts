/**
 * The diagnostics channels are a public contract: every name signpost publishes on is declared
 * in src/diagnostics.ts, documented in the README, and is the channel Node gives for that name.
 */
import { channel } from 'node:diagnostics_channel';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { channels } from '../src/index.ts';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('diagnostics channels', () => {
  const names = Object.values(channels).map((c) => String(c.name));

  it('are the channels Node gives for their names, each name once', () => {
    for (const c of Object.values(channels)) expect(channel(c.name)).toBe(c);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^signpost:[a-z]+:[a-z-]+$/);
  });

  it('are declared in src/diagnostics.ts only', () => {
    const src = new URL('../src/', import.meta.url);
    const elsewhere = readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && file !== 'diagnostics.ts')
      .filter((file) => /\bchannel\(|from 'node:diagnostics_channel'/.test(readFileSync(new URL(file, src), 'utf8')));
    expect(elsewhere).toEqual([]);
  });

  it('are every one in the README, and the README names no other', () => {
    const section = README.slice(README.indexOf('### Diagnostics'), README.indexOf('\n## ', README.indexOf('### Diagnostics')));
    const documented = new Set(section.match(/signpost:[a-z]+:[a-z-]+/g));
    expect([...documented].sort()).toEqual([...names].sort());
  });
});
