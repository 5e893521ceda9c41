/**
 * Which resolver finds a name: an exact entry in `services`, else the longest matching suffix
 * in `namespaces`, else (for `unlisted: 'dns'`, and always for resolve()/pick()) plain DNS.
 * Renames are applied before routing: see {@link Aliases}.
 */
import { isIP } from 'node:net';
import type { AliasConfig, AliasMode, NamespaceConfig, ServiceConfig } from './options.ts';
import type { Resolver } from './types.ts';
import { checkHostname, checkKeys, checkObject, checkOneOf, invalid } from './validate.ts';
import { InvalidArgumentError } from './errors.ts';

/**
 * Lower-case, without a trailing dot: the one form names are compared and keyed in, everywhere in
 * signpost (routes, the cache, DNS answers). The root, `"."`, stays `"."`.
 */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** An IPv4 literal has only digits and dots; an IPv6 one has a colon. */
const MAYBE_IP = /^[\d.]+$|:/;

export function isIpLiteral(host: string): boolean {
  // Host names (the usual case) are turned away before isIP's two long regular expressions.
  if (!MAYBE_IP.test(host)) return false;
  return isIP(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host) !== 0;
}

export type RouteRule = { kind: 'service'; name: string } | { kind: 'namespace'; suffix: string };

export type ResolverFactory = (config: ServiceConfig | NamespaceConfig, rule: RouteRule) => Resolver;

export interface Route {
  readonly resolver: Resolver;
  /** True when `services` or `namespaces` matched (not the unlisted fallback). */
  readonly listed: boolean;
}

export class Router {
  readonly #exact = new Map<string, Route>();
  /** Longest suffix first. */
  readonly #suffixes: Array<{ suffix: string; dotted: string; route: Route }> = [];
  readonly #fallback: Route;

  constructor(
    services: Record<string, ServiceConfig>,
    namespaces: Record<string, NamespaceConfig>,
    makeResolver: ResolverFactory,
  ) {
    for (const [name, config] of Object.entries(services)) {
      const key = normalizeName(name);
      this.#exact.set(key, { resolver: makeResolver(config, { kind: 'service', name: key }), listed: true });
    }
    for (const [suffix, config] of Object.entries(namespaces)) {
      const key = normalizeName(suffix);
      this.#suffixes.push({
        suffix: key,
        dotted: `.${key}`,
        route: { resolver: makeResolver(config, { kind: 'namespace', suffix: key }), listed: true },
      });
    }
    this.#suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
    this.#fallback = {
      resolver: makeResolver({ via: 'dns' }, { kind: 'service', name: '*' }),
      listed: false,
    };
  }

  /** The route of a normalized name; unlisted names get plain DNS, marked `listed: false`. */
  route(name: string): Route {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    for (const rule of this.#suffixes) {
      if (name.endsWith(rule.dotted)) return rule.route;
    }
    return this.#fallback;
  }
}

export interface Alias {
  readonly from: string;
  readonly to: string;
  readonly mode: AliasMode;
}

/** Renames, old name → new name. One hop only: a chain would hide where traffic goes. */
export class Aliases {
  readonly #map = new Map<string, Alias>();

  constructor(aliases: Record<string, AliasConfig | string>) {
    for (const [from, config] of Object.entries(aliases)) {
      const to = typeof config === 'string' ? config : config.to;
      const mode = typeof config === 'string' ? 'redirect' : (config.mode ?? 'redirect');
      this.#map.set(normalizeName(from), { from: normalizeName(from), to: normalizeName(to), mode });
    }
  }

  get(name: string): Alias | undefined {
    return this.#map.get(name);
  }

  has(name: string): boolean {
    return this.#map.has(name);
  }
}

/** Checks the `aliases` option (throws InvalidArgumentError, SIGNPOST_ERR_INVALID_ARG) and builds them. */
export function parseAliases(value: unknown = {}, path = 'aliases'): Aliases {
  checkAliases(value, path);
  return new Aliases(value);
}

function checkAliases(value: unknown, path: string): asserts value is Record<string, AliasConfig | string> {
  checkObject(path, value);
  const names = new Set(Object.keys(value).map(normalizeName));
  for (const [from, config] of Object.entries(value)) {
    const at = `${path}[${JSON.stringify(from)}]`;
    checkHostname(`${path} key`, from);
    let to: unknown = config;
    if (typeof config !== 'string') {
      checkObject(at, config);
      checkKeys(at, config, ['to', 'mode']);
      to = config.to;
      if (config.mode !== undefined) checkOneOf(`${at}.mode`, config.mode, ['redirect', 'union', 'fallback']);
    }
    checkHostname(`${at}.to`, to);
    const target = normalizeName(to);
    if (target === normalizeName(from)) throw invalid(`${at}.to`, to, 'a name other than the alias itself');
    if (names.has(target)) {
      throw new InvalidArgumentError(
        `Invalid ${at}.to: ${JSON.stringify(to)} is itself an alias; point ${JSON.stringify(from)} at the final name (aliases are one hop)`,
      );
    }
  }
}
