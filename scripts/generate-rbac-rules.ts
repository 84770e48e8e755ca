/**
 * Writes the Helm chart's RBAC rules (charts/blobcache-operator/files/rbac-rules.yaml) from
 * the operator's own list of what it reads and writes (`rbacRules()` in
 * operator/src/kube/access.ts). test/packaging checks them against what the operator
 * actually does, from the API server's audit log.
 *
 *   node scripts/generate-rbac-rules.ts          write the file
 *   node scripts/generate-rbac-rules.ts --check  fail when it is stale (npm test runs this)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { rbacRules } from '../operator/src/kube/access.ts';

const path = join(import.meta.dirname, '..', 'charts/blobcache-operator/files/rbac-rules.yaml');
const header = `# Generated from operator/src/kube/access.ts by scripts/generate-rbac-rules.ts. Do not edit.
#
# The operator's RBAC: \`cluster\` for its ClusterRole (every namespace), \`ownNamespace\` for a
# Role in the release's namespace (its leader Lease). Reads are list and watch (the operator
# reads from informer caches); writes are server-side apply (patch, and create, which the
# API server also checks when an apply creates its object), deletes of pruned children, and
# status, Event and generated-Secret writes. No pods/exec: it talks to Redis over the network.
`;
const output = header + stringify(rbacRules());

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // Missing counts as stale.
  }
  if (current !== output) {
    console.error(
      'Generated files are stale: charts/blobcache-operator/files/rbac-rules.yaml. Run: npm run generate',
    );
    process.exit(1);
  }
} else {
  writeFileSync(path, output);
}
