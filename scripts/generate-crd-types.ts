/**
 * Generates, from crds/blobcache.io_blobcaches.yaml (the source of truth): the TypeScript
 * types of the BlobCache API, `withDefaults(spec)` with a defaulted spec type (the CRD's
 * `default:` values are the only defaults the operator knows), and the Helm chart's copy
 * of the CRD.
 *
 *   node scripts/generate-crd-types.ts          write the generated files
 *   node scripts/generate-crd-types.ts --check  fail when they are stale (npm test runs this)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { generateDefaults, pascal, type Schema } from './crd-defaults.ts';

const root = join(import.meta.dirname, '..');
const crdPath = join(root, 'crds/blobcache.io_blobcaches.yaml');
const typesPath = join(root, 'operator/src/api/v1alpha1/types.generated.ts');
const defaultsPath = join(root, 'operator/src/api/v1alpha1/defaults.generated.ts');
const chartCrdPath = join(root, 'charts/blobcache-operator/crds/blobcache.io_blobcaches.yaml');

const crdText = readFileSync(crdPath, 'utf8');
const crd = parse(crdText) as {
  spec: {
    group: string;
    names: { kind: string; plural: string };
    versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
  };
};
const version = crd.spec.versions[0]!;
const interfaces: string[] = [];

function doc(description: string | undefined, indent: string): string {
  if (description === undefined) return '';
  return `${indent}/** ${description.replace(/\*\//g, '*\\/').replace(/\s+/g, ' ').trim()} */\n`;
}

function typeOf(schema: Schema, path: string[]): string {
  if (schema.enum !== undefined)
    return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (schema['x-kubernetes-preserve-unknown-fields'] === true && schema.properties === undefined) {
    return 'Record<string, unknown>';
  }
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array':
      return `${typeOf(schema.items ?? {}, path)}[]`;
    case 'object': {
      if (schema.properties === undefined) return 'Record<string, unknown>';
      const name = pascal(path);
      const required = new Set(schema.required ?? []);
      const fields = Object.entries(schema.properties)
        .filter(
          ([field]) => !(path.length === 1 && ['apiVersion', 'kind', 'metadata'].includes(field)),
        )
        .map(
          ([field, child]) =>
            `${doc(child.description, '  ')}  ${field}${required.has(field) ? '' : '?'}: ${typeOf(child, [...path, field])};`,
        );
      // Declared fields plus any others the API server keeps (x-kubernetes-preserve-unknown-fields).
      if (schema['x-kubernetes-preserve-unknown-fields'] === true)
        fields.push('  [field: string]: unknown;');
      interfaces.push(
        `${doc(schema.description, '')}export interface ${name} {\n${fields.join('\n')}\n}\n`,
      );
      return name;
    }
    default:
      return 'unknown';
  }
}

const schema = version.schema.openAPIV3Schema;
typeOf(schema.properties!.spec!, ['BlobCache', 'spec']);
typeOf(schema.properties!.status!, ['BlobCache', 'status']);
const header = `// Generated from crds/blobcache.io_blobcaches.yaml by scripts/generate-crd-types.ts. Do not edit.`;
const types = `${header}
import type { V1ObjectMeta } from '@kubernetes/client-node';

export const GROUP = ${JSON.stringify(crd.spec.group)};
export const VERSION = ${JSON.stringify(version.name)};
export const API_VERSION = \`\${GROUP}/\${VERSION}\`;
export const KIND = ${JSON.stringify(crd.spec.names.kind)};
export const PLURAL = ${JSON.stringify(crd.spec.names.plural)};

${interfaces.join('\n')}
${doc(schema.description, '')}export interface BlobCache {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: BlobCacheSpec;
  status?: BlobCacheStatus;
}
`;
const defaults = `${header}\n${generateDefaults(schema.properties!.spec!, ['BlobCache', 'spec'])}`;
const chartCrd = `# Copied from crds/blobcache.io_blobcaches.yaml by scripts/generate-crd-types.ts. Do not edit.\n${crdText}`;

const outputs: [string, string][] = [
  [typesPath, types],
  [defaultsPath, defaults],
  [chartCrdPath, chartCrd],
];
if (process.argv.includes('--check')) {
  const stale = outputs.filter(([path, content]) => {
    try {
      return readFileSync(path, 'utf8') !== content;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(
      `Generated files are stale: ${stale.map(([path]) => path.slice(root.length + 1)).join(', ')}. Run: npm run generate`,
    );
    process.exit(1);
  }
} else {
  for (const [path, content] of outputs) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
}
