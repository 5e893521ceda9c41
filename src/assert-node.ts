/**
 * Throws `SIGNPOST_ERR_UNSUPPORTED_NODE` on a Node.js older than signpost supports.
 *
 * The first import of `index.ts`: ES modules are evaluated in import order, and this one imports
 * nothing that needs a new Node, so it runs before undici and the AWS SDK are evaluated. On an
 * older Node they would otherwise fail deep inside with an unrelated `TypeError`.
 *
 * Linking comes before evaluation, though: a named import of something an older Node lacks
 * (`import { newThing } from 'node:x'`), anywhere in signpost, fails before this runs. Import
 * such APIs through a namespace (`import * as x from 'node:x'`); test/first-use.test.ts runs the
 * built package on an older Node when the machine has one.
 */
import { isSupportedNode, unsupportedNodeMessage } from './node-version.ts';

if (!isSupportedNode(process.versions.node)) {
  const error = new Error(unsupportedNodeMessage()) as Error & { code: string };
  error.code = 'SIGNPOST_ERR_UNSUPPORTED_NODE';
  throw error;
}
