/**
 * Testing with undici's MockAgent: `new MockAgent({ agent: discoveryAgent })` keeps its mock
 * pools, keyed by the logical origin (`http://orders.myapp.local`), in the map undici's Agent keeps
 * its pools in. The DiscoveryAgent has that map too, and a request whose origin has a mock there
 * goes to the mock instead of being discovered: mocks are written against the names the service
 * calls, as with a plain Agent.
 */
import { Agent, type Dispatcher } from 'undici';

/**
 * undici's private `kClients` symbol, read off an Agent (undici does not export it). undefined
 * if a future undici renames it: MockAgent then keeps working over undici's own Agent only.
 */
export const kClients: symbol | undefined = Object.getOwnPropertySymbols(new Agent()).find((s) => s.description === 'clients');

/** The mock (or other dispatcher) MockAgent registered for this origin, if any. */
export function mockFor(clients: Map<string, Dispatcher>, origin: unknown, allowH2: unknown): Dispatcher | undefined {
  if (clients.size === 0 || origin == null) return undefined;
  const key = typeof origin === 'string' ? origin : (origin as URL).origin;
  return (allowH2 === false ? clients.get(`${key}#http1-only`) : undefined) ?? clients.get(key);
}
