/**
 * The three HTTP instances for the throughput runs, in their own process (forked by run.ts):
 * 127.0.0.2, .3 and .4 on one port. A minimal keep-alive responder on `node:net` (every request
 * is a bodiless GET ending in CRLF CRLF) so the server costs as little as possible and the
 * clients' own overhead is what differs. Sends { port } once listening, and on 'counts' the
 * requests each address answered.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { INSTANCE_ADDRESSES } from './setup.ts';

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=60\r\n\r\nok');
const END = Buffer.from('\r\n\r\n');
const counts: Record<string, number> = Object.fromEntries(INSTANCE_ADDRESSES.map((a) => [a, 0]));

function serve(address: string): Server {
  return createServer((socket: Socket) => {
    socket.setNoDelay(true);
    // The last three bytes of the previous chunk: a CRLF CRLF may straddle two chunks.
    let tail: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const data = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
      let requests = 0;
      let from = 0;
      for (;;) {
        const at = data.indexOf(END, from);
        if (at < 0) break;
        requests++;
        from = at + 4;
      }
      tail = data.subarray(Math.max(from, data.length - 3));
      if (requests === 0) return;
      counts[address]! += requests;
      if (requests === 1) socket.write(RESPONSE);
      else socket.write(Buffer.concat(Array.from({ length: requests }, () => RESPONSE)));
    });
    socket.on('error', () => socket.destroy());
  });
}

async function listen(port: number): Promise<Server[]> {
  const servers: Server[] = [];
  try {
    for (const address of INSTANCE_ADDRESSES) {
      const server = serve(address);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, address, () => resolve());
      });
      servers.push(server);
      if (port === 0) port = (server.address() as { port: number }).port;
    }
    return servers;
  } catch (error) {
    for (const server of servers) server.close();
    throw error;
  }
}

let servers: Server[] | undefined;
for (let attempt = 0; attempt < 10 && servers === undefined; attempt++) {
  try {
    servers = await listen(0);
  } catch {
    // The port taken on .2 was in use on .3 or .4: try another.
  }
}
if (servers === undefined) throw new Error('could not listen on one port on 127.0.0.2-4');
const live = servers;
const port = (live[0]!.address() as { port: number }).port;
process.send!({ port });
process.on('message', (message: { type: string }) => {
  if (message.type === 'counts') process.send!({ counts });
  if (message.type === 'close') {
    for (const server of live) server.close();
    process.disconnect?.();
    setTimeout(() => process.exit(0), 200).unref();
  }
});
