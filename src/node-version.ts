/**
 * The oldest Node.js signpost runs on. `assert-node.ts` (the package) and `cli/assert-node.ts`
 * (the `signpost` command) check it as soon as signpost is loaded. Written for old runtimes too:
 * nothing newer than Node 18 in syntax or API, and no imports.
 */

/** The oldest supported Node.js, as in package.json's `engines` (undici 8 needs it). */
export const MIN_NODE_VERSION = '22.19.0';

/** Whether `version` ("22.19.0", "v20.20.2") is at least {@link MIN_NODE_VERSION}. */
export function isSupportedNode(version: string): boolean {
  const have = version.replace(/^v/, '').split('.').map(Number);
  const need = MIN_NODE_VERSION.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    const a = have[i] ?? 0;
    const b = need[i] ?? 0;
    if (!(a >= 0)) return false;
    if (a !== b) return a > b;
  }
  return true;
}

/** What to tell the user of an older Node. */
export function unsupportedNodeMessage(version = process.versions.node, execPath = process.execPath): string {
  return (
    `signpost needs Node.js >= ${MIN_NODE_VERSION.replace(/\.0$/, '')}, but this is Node.js ${version} (${execPath}). ` +
    'Run it with a newer Node: 22.19 or later, 24 LTS, or current'
  );
}
