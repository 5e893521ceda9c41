/**
 * A fast uniform random number in [0, 1) for picks (xorshift32, seeded from Math.random). A pick
 * draws up to two per request; this costs a few instructions where Math.random costs a call.
 * Not for anything that must be unpredictable.
 */
// In a typed array, so that storing the state never boxes a number (no allocation per pick).
const state = new Int32Array([Math.floor(Math.random() * 0x7fff_fffe) + 1]);

export function random(): number {
  let x = state[0] as number;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  state[0] = x;
  return (x >>> 0) / 4_294_967_296;
}
