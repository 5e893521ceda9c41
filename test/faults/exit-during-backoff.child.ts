/**
 * Run by request-path.test.ts as its own process: one request whose first attempts are refused,
 * so it waits in retry backoff with nothing else keeping the process alive. It must settle (and
 * print how) before the process exits.
 */
import { request } from 'undici';
import { DiscoveryAgent } from '../../src/agent/index.ts';

const port = Number(process.argv[2]);
const agent = new DiscoveryAgent({
  services: { 'api.exit.faults.local': { via: 'static', instances: [{ address: '127.0.0.120', port }] } },
  retry: { retries: 3, minDelay: 1500, maxDelay: 1500 },
  ejection: false,
});
request('http://api.exit.faults.local/', { dispatcher: agent }).then(
  async (response) => {
    await response.body.text();
    console.log(`settled ${response.statusCode}`);
    await agent.close();
  },
  async (error: unknown) => {
    console.log(`settled ${(error as { code?: string }).code}`);
    await agent.destroy();
  },
);
