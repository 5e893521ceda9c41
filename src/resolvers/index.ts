/**
 * Building a resolver from its config: the one place that knows which {@link Resolver} a `via`
 * means, used by Discovery (for every `services` and `namespaces` entry) and by the `signpost`
 * command. Configs are checked where they are given (`parseServices`, `parseNamespaces`, the
 * CLI's flags); nothing here checks them again.
 */
import { systemClock, type Clock } from '../clock.ts';
import { DnsClient, dnsSettings, type DnsSettings } from '../dns/client.ts';
import type { DnsOptions, NamespaceConfig, ServiceConfig } from '../options.ts';
import type { Resolver } from '../types.ts';
import { CloudMapClient, type CloudMapSettings } from './cloudmap-client.ts';
import { CloudMapResolver, type CloudMapResolverConfig } from './cloudmap.ts';
import { DnsResolver } from './dns.ts';
import { SrvResolver } from './srv.ts';
import { StaticResolver } from './static.ts';

export { CloudMapResolver, type AddressLookup, type CloudMapResolverConfig } from './cloudmap.ts';
export { CloudMapClient, parseCloudMapOptions, type CloudMapSettings } from './cloudmap-client.ts';
export { DnsResolver, type DnsResolverConfig } from './dns.ts';
export { SrvResolver, type SrvResolverConfig } from './srv.ts';
export { StaticResolver } from './static.ts';

/**
 * The registry clients resolvers share: one DNS wire client and one Cloud Map client per
 * Discovery (or CLI command), each made on first use and released by {@link close}.
 */
export class ResolverClients {
  readonly #dnsOptions: DnsOptions;
  readonly #cloudMapSettings: CloudMapSettings;
  readonly #clock: Clock;
  #dnsSettings: DnsSettings | undefined;
  #dns: DnsClient | undefined;
  #cloudMap: CloudMapClient | undefined;
  #closed = false;

  /** `dns` as `parseDnsOptions` gives it, `cloudMap` as `parseCloudMapOptions` does. */
  constructor(dns: DnsOptions, cloudMap: CloudMapSettings, clock: Clock = systemClock) {
    this.#dnsOptions = dns;
    this.#cloudMapSettings = cloudMap;
    this.#clock = clock;
  }

  /** The DNS settings in force (resolv.conf read once, on first use). */
  dnsSettings(): DnsSettings {
    this.#dnsSettings ??= dnsSettings(this.#dnsOptions);
    return this.#dnsSettings;
  }

  dns(): DnsClient {
    if (this.#dns === undefined) {
      this.#dns = new DnsClient(this.dnsSettings());
      if (this.#closed) this.#dns.close();
    }
    return this.#dns;
  }

  cloudMap(): CloudMapClient {
    if (this.#cloudMap === undefined) {
      this.#cloudMap = new CloudMapClient(this.#cloudMapSettings, this.#clock);
      if (this.#closed) this.#cloudMap.close();
    }
    return this.#cloudMap;
  }

  /** Stops every query in flight and releases sockets. Idempotent; a client made afterwards is closed at once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#dns?.close();
    this.#cloudMap?.close();
  }
}

/**
 * The resolver for one `services` entry, or one `namespaces` rule (`suffix`: the rule's suffix,
 * the Cloud Map namespace of a rule that names none).
 */
export function createResolver(config: ServiceConfig | NamespaceConfig, clients: ResolverClients, suffix?: string): Resolver {
  switch (config.via) {
    case 'static':
      return new StaticResolver(config.instances);
    case 'dns':
      return new DnsResolver(clients.dns(), {
        ...(config.port !== undefined && { port: config.port }),
        ...(config.family !== undefined && { family: config.family }),
      });
    case 'srv': {
      if ('srv' in config && config.srv !== undefined) return new SrvResolver(clients.dns(), { srv: config.srv });
      if ('srvPrefix' in config && config.srvPrefix !== undefined) {
        const prefix = config.srvPrefix;
        return new SrvResolver(clients.dns(), { srv: (name) => `${prefix}.${name}` });
      }
      return new SrvResolver(clients.dns());
    }
    case 'cloudmap': {
      const target: CloudMapResolverConfig = {};
      if ('service' in config) {
        target.namespace = config.namespace;
        target.service = config.service;
      } else {
        const namespace = config.namespace ?? suffix;
        if (namespace !== undefined) target.namespace = namespace;
      }
      if (config.healthStatus !== undefined) target.healthStatus = config.healthStatus;
      if (config.queryParameters !== undefined) target.queryParameters = config.queryParameters;
      if (config.optionalParameters !== undefined) target.optionalParameters = config.optionalParameters;
      if (config.ownerAccount !== undefined) target.ownerAccount = config.ownerAccount;
      if (config.port !== undefined) target.port = config.port;
      // Instances registered by DNS name (load balancers, CNAMEs) are looked up like `via: 'dns'`.
      let addresses: DnsResolver | undefined;
      return new CloudMapResolver(clients.cloudMap(), target, {
        resolve: (name, context) => (addresses ??= new DnsResolver(clients.dns())).resolve(name, context),
      });
    }
  }
}
