/**
 * The instances some cached name serves, with how many names serve each: what
 * `Discovery.hasInstance(key)` answers (asked for every idle socket, so in O(1)).
 *
 * Shaped for heap, since it holds every instance of every cached name: it is keyed by the address
 * string the instance already holds, not by its `address:port` key (a string of its own per
 * instance, about 32 bytes each), and an address served on one port (nearly all are) holds one
 * number, `count * PORT_CODES + portCode`: no object per instance. An address served on several
 * ports, or by more names than that number can count, holds a Map of port code → count instead.
 */
import { instanceKey } from './instance.ts';

/** Port codes: 0 for an instance without a port, port + 1 otherwise. */
const PORT_CODES = 65_537;
/** The most names one packed number counts (the number stays a small integer, kept unboxed). */
const MAX_PACKED_COUNT = Math.floor(0x7fff_ffff / PORT_CODES);

type Ports = number | Map<number, number>;

/** What identifies an instance here. */
interface Endpoint {
  readonly address: string;
  readonly port?: number | undefined;
}

function portCode(port: number | undefined): number {
  return port === undefined ? 0 : port + 1;
}

export class LiveInstances {
  readonly #byAddress = new Map<string, Ports>();

  /** One more name serves the instance. */
  add(instance: Endpoint): void {
    const code = portCode(instance.port);
    const ports = this.#byAddress.get(instance.address);
    if (ports === undefined) {
      this.#byAddress.set(instance.address, PORT_CODES + code);
    } else if (typeof ports === 'number') {
      const count = Math.floor(ports / PORT_CODES);
      if (ports % PORT_CODES === code && count < MAX_PACKED_COUNT) this.#byAddress.set(instance.address, ports + PORT_CODES);
      else {
        const map = new Map<number, number>([[ports % PORT_CODES, count]]);
        map.set(code, (map.get(code) ?? 0) + 1);
        this.#byAddress.set(instance.address, map);
      }
    } else {
      ports.set(code, (ports.get(code) ?? 0) + 1);
    }
  }

  /** One name fewer serves the instance; true when none does any more. */
  remove(instance: Endpoint): boolean {
    const code = portCode(instance.port);
    const ports = this.#byAddress.get(instance.address);
    if (ports === undefined) return true;
    if (typeof ports === 'number') {
      if (ports % PORT_CODES !== code) return true;
      if (ports < 2 * PORT_CODES) {
        this.#byAddress.delete(instance.address);
        return true;
      }
      this.#byAddress.set(instance.address, ports - PORT_CODES);
      return false;
    }
    const count = (ports.get(code) ?? 1) - 1;
    if (count > 0) {
      ports.set(code, count);
      return false;
    }
    ports.delete(code);
    if (ports.size === 0) this.#byAddress.delete(instance.address);
    return true;
  }

  /** Whether a name serves the instance with this key (`address:port`, `[v6]:port`, or a bare address). */
  has(key: string): boolean {
    let address: string;
    let rest: string;
    if (key.startsWith('[')) {
      const close = key.indexOf(']');
      if (close < 0) return false;
      address = key.slice(1, close);
      // Only addresses with a colon are bracketed in a key.
      if (!address.includes(':')) return false;
      rest = key.slice(close + 1);
    } else {
      const colon = key.lastIndexOf(':');
      address = colon < 0 ? key : key.slice(0, colon);
      if (address.includes(':')) return false;
      rest = colon < 0 ? '' : key.slice(colon);
    }
    let code = 0;
    if (rest !== '') {
      const port = Number(rest.slice(1));
      // The key is compared as written: `a:08080` is not the key of port 8080.
      if (rest[0] !== ':' || `:${port}` !== rest) return false;
      code = portCode(port);
    }
    const ports = this.#byAddress.get(address);
    if (ports === undefined) return false;
    return typeof ports === 'number' ? ports % PORT_CODES === code : ports.has(code);
  }

  /** The keys of every instance served. */
  *keys(): IterableIterator<string> {
    for (const [address, ports] of this.#byAddress) {
      if (typeof ports === 'number') yield keyOf(address, ports % PORT_CODES);
      else for (const code of ports.keys()) yield keyOf(address, code);
    }
  }

  clear(): void {
    this.#byAddress.clear();
  }
}

function keyOf(address: string, code: number): string {
  return code === 0 ? instanceKey({ address }) : instanceKey({ address, port: code - 1 });
}
