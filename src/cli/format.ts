/** Small helpers for what the CLI prints: tables, durations, instances. */
import { instanceKey } from '../instance.ts';
import type { Instance } from '../types.ts';

/** Left-aligned columns, two spaces apart; a header row first. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** 1500 → "1.5s", 60000 → "60s", 300 → "300ms". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

/** HH:MM:SS.mmm in local time. */
export function clockTime(date = new Date()): string {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** "127.0.0.2:8080 (zone us-east-1a)" */
export function describeInstance(instance: Instance): string {
  const extras: string[] = [];
  if (instance.zone !== undefined) extras.push(`zone ${instance.zone}`);
  if (instance.id !== instance.address && instance.id !== instanceKey(instance)) extras.push(`id ${instance.id}`);
  if (instance.healthStatus !== undefined) extras.push(instance.healthStatus.toLowerCase());
  return extras.length > 0 ? `${instanceKey(instance)} (${extras.join(', ')})` : instanceKey(instance);
}

/** An instance as plain JSON. */
export function instanceJson(instance: Instance): Record<string, unknown> {
  return {
    id: instance.id,
    address: instance.address,
    port: instance.port ?? null,
    zone: instance.zone ?? null,
    priority: instance.priority,
    weight: instance.weight,
    ...(instance.healthStatus !== undefined && { healthStatus: instance.healthStatus }),
    attributes: instance.attributes,
  };
}

/** The first line of an error's message: CLI output never carries a stack. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
