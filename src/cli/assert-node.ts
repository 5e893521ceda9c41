/**
 * The `signpost` command on a Node.js older than signpost supports: one line and exit code 1,
 * before undici is evaluated (this is the first import of `main.ts`), instead of a stack trace
 * from deep inside undici.
 */
import { isSupportedNode, unsupportedNodeMessage } from '../node-version.ts';

if (!isSupportedNode(process.versions.node)) {
  process.stderr.write(`${unsupportedNodeMessage()}\n`);
  process.exit(1);
}
