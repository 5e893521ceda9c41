/**
 * `discovery.lookup` against cacheable-lookup, in one measuring child (forked by run.ts): a warm
 * lookup of the same name on the same bind9, the two measured in turn within each round, through
 * the same callback-to-promise wrapper:
 *
 * - `one`: `lookup(name, {}, cb)`, one address (what `dns.lookup` callers and `family`-pinned
 *   sockets ask);
 * - `all`: `lookup(name, { all: true }, cb)`, what `net.connect` asks (Node's autoSelectFamily)
 *   for every new connection of `http.Agent`, pg, ioredis, … (without the ADDRCONFIG hint it adds:
 *   cacheable-lookup applies it by the host's interfaces, and finds no address on a machine whose
 *   only interface is loopback, as the offline test run's)
 *
 * signpost balances (a new address per call) where cacheable-lookup hands back its cached list.
 * Receives a ChildConfig over IPC and answers with { type: 'result', data: LookupResults }; run on
 * its own (`npm run build && node bench/lookup.ts [--quick]`), it starts bind9 itself and prints
 * the figures.
 */
import { promises as dnsPromises } from 'node:dns';
import { Discovery } from '../dist/index.js';
import { Bind9 } from '../test/fixtures/bind9.ts';
import { keep, measureAsync, rotate, sinkSeen, spread, type Spread } from './measure.ts';
import { API_NAME, FULL, QUICK, ZONE_A, zones, type ChildConfig, type ChildMessage, type ParentMessage } from './setup.ts';

export interface LookupComparison {
  signpostNs: Spread;
  cacheableLookupNs: Spread;
  /** signpost ÷ cacheable-lookup, per round. */
  ratio: Spread;
}

export interface LookupResults {
  one: LookupComparison;
  all: LookupComparison;
}

type Callback = (error: Error | null, address: unknown) => void;
type LookupFn = (hostname: string, options: object, callback: Callback) => void;

function send(message: ChildMessage): void {
  process.send!(message);
}

function promised(lookup: LookupFn, options: object): () => Promise<unknown> {
  return () =>
    new Promise((resolve, reject) => lookup(API_NAME, options, (error, address) => (error ? reject(error) : resolve(address))));
}

async function compare(config: ChildConfig, ours: LookupFn, theirs: LookupFn, options: object): Promise<LookupComparison> {
  const { sizes } = config;
  const scenarios = [promised(ours, options), promised(theirs, options)];
  keep(await scenarios[0]!());
  keep(await scenarios[1]!());
  const signpost: number[] = [];
  const cacheable: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < sizes.rounds * 2; round++) {
    const [first, second] = rotate([0, 1], round);
    const results: number[] = [];
    results[first!] = (await measureAsync(scenarios[first!]!, sizes.asyncBatch, sizes.samples)).p50;
    results[second!] = (await measureAsync(scenarios[second!]!, sizes.asyncBatch, sizes.samples)).p50;
    signpost.push(results[0]!);
    cacheable.push(results[1]!);
    ratios.push(results[0]! / results[1]!);
  }
  return { signpostNs: spread(signpost), cacheableLookupNs: spread(cacheable), ratio: spread(ratios) };
}

async function run(config: ChildConfig): Promise<LookupResults> {
  const discovery = new Discovery({
    namespaces: { [ZONE_A]: { via: 'dns', family: 4, port: 8080 } },
    dns: { servers: [config.dnsServer] },
  });
  const name = 'cacheable-lookup';
  const CacheableLookup = ((await import(name)) as { default: new (options: object) => { lookup: LookupFn } }).default;
  const resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([config.dnsServer]);
  const cacheable = new CacheableLookup({ resolver, lookup: false });
  const ours = discovery.lookup as unknown as LookupFn;
  const theirs: LookupFn = (hostname, options, callback) => cacheable.lookup(hostname, options, callback);
  const one = await compare(config, ours, theirs, {});
  const all = await compare(config, ours, theirs, { all: true });
  await discovery.close();
  return { one, all };
}

if (process.send === undefined) {
  // On its own: bind9 with the bench's zones, then the same measurement, printed.
  const sizes = process.argv.includes('--quick') ? QUICK : FULL;
  const bind9 = await Bind9.start({ zones: zones(sizes, 0, 1), querylog: false });
  try {
    const results = await run({ part: 'lookup', sizes, dnsServer: bind9.server, cloudMapEndpoint: '', coldNames: 0 });
    const row = (what: string, c: LookupComparison): string =>
      `${what}: signpost ${c.signpostNs.median.toFixed(0)} ns, cacheable-lookup ${c.cacheableLookupNs.median.toFixed(0)} ns, ` +
      `${c.ratio.median.toFixed(2)}× (${c.ratio.min.toFixed(2)}–${c.ratio.max.toFixed(2)} over ${sizes.rounds * 2} rounds)\n`;
    process.stdout.write(row('one address', results.one) + row('all: true (net.connect)', results.all));
  } finally {
    await bind9.close();
  }
}

process.on('message', (message: ParentMessage) => {
  if (message.type !== 'config') return;
  void run(message.config)
    .then((data) => {
      send({ type: 'result', data: { data, sink: sinkSeen() } });
      process.disconnect?.();
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
});
