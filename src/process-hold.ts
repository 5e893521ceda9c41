/**
 * Keeps the process up while a caller waits on Discovery for a name's first answer. signpost's own
 * timers are unref'd (a library must not hold a process open), so a connection whose lookup waits
 * for a cold name, with nothing else scheduled, would otherwise let the process exit under it.
 */
export class ProcessHold {
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  hold(): void {
    if (this.#count++ === 0) this.#timer = setInterval(noop, 1 << 30);
  }

  release(): void {
    if (this.#count === 0) return;
    if (--this.#count === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

function noop(): void {}

/** Shared by every lookup and node:http agent of the process: one timer however many wait. */
export const coldWaits = new ProcessHold();
