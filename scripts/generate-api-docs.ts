/**
 * Renders docs/openapi.yaml, the HTTP API's contract, as docs/api.md: one section per
 * call with its parameters, body and answers, then the shared schemas.
 *
 *   node scripts/generate-api-docs.ts          write docs/api.md
 *   node scripts/generate-api-docs.ts --check  fail when it is stale (npm test runs this)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

type Node = Record<string, unknown>;
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
}
interface Response {
  description?: string;
  headers?: Record<string, Node>;
  content?: Record<string, { schema?: Node }>;
}
interface Operation {
  operationId: string;
  summary?: string;
  description?: string;
  security?: Node[];
  parameters?: Node[];
  requestBody?: Node;
  responses: Record<string, Node>;
}

const root = join(import.meta.dirname, '..');
const sourcePath = join(root, 'docs/openapi.yaml');
const outputPath = join(root, 'docs/api.md');
const spec = parse(readFileSync(sourcePath, 'utf8')) as {
  info: { title: string; version: string; summary?: string; description?: string };
  servers?: { url: string; description?: string }[];
  paths: Record<string, Record<string, Operation | Node[]>>;
  components: {
    securitySchemes?: Record<string, { description?: string }>;
    schemas: Record<string, Node>;
  };
};

/** Follows a local `$ref` (`#/components/...`) until it reaches the object itself. */
function resolve<T>(node: Node | T): T {
  let current = node as Node;
  while (typeof current.$ref === 'string') {
    current = current.$ref
      .slice(2)
      .split('/')
      .reduce<Node>((parent, key) => parent[key] as Node, spec as unknown as Node);
  }
  return current as T;
}

const cell = (text: string | undefined) =>
  (text ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();

/** A schema in a few words: `Md5`, `array of Md5`, `string (binary)`. */
function schemaName(schema: Node | undefined): string {
  if (schema === undefined) return '';
  if (typeof schema.$ref === 'string') return schema.$ref.split('/').pop()!;
  if (schema.type === 'array') return `array of ${schemaName(schema.items as Node)}`;
  if (schema.contentMediaType !== undefined) return `${String(schema.type)} (binary)`;
  return typeof schema.type === 'string' ? schema.type : 'object';
}

function operationSection(path: string, method: string, operation: Operation, shared: Node[]) {
  const lines = [`### \`${method.toUpperCase()} ${path}\``, '', operation.summary ?? '', ''];
  if (operation.description) lines.push(operation.description.trim(), '');
  const open = operation.security?.length === 1 && Object.keys(operation.security[0]!).length === 0;
  lines.push(open ? 'No token needed.' : 'Needs a token when tokens are configured.', '');
  const parameters = [...shared, ...(operation.parameters ?? [])].map((p) => resolve<Parameter>(p));
  if (parameters.length > 0) {
    lines.push('| parameter | in | required | meaning |', '| --- | --- | --- | --- |');
    for (const p of parameters) {
      lines.push(
        `| \`${p.name}\` | ${p.in} | ${p.required ? 'yes' : 'no'} | ${cell(p.description)} |`,
      );
    }
    lines.push('');
  }
  if (operation.requestBody !== undefined) {
    const body = resolve<{ content: Record<string, { schema?: Node }> }>(operation.requestBody);
    const types = Object.entries(body.content).map(
      ([type, media]) => `\`${type}\`: ${schemaName(media.schema)}`,
    );
    lines.push(`Body: ${types.join('; ')}.`, '');
  }
  lines.push('| status | meaning | headers | body |', '| --- | --- | --- | --- |');
  for (const [status, node] of Object.entries(operation.responses)) {
    const response = resolve<Response>(node);
    const headers = Object.keys(response.headers ?? {}).map((name) => `\`${name}\``);
    const bodies = Object.entries(response.content ?? {}).map(
      ([type, media]) => `\`${type}\` ${schemaName(media.schema)}`,
    );
    lines.push(
      `| ${status} | ${cell(response.description)} | ${headers.join(', ')} | ${bodies.join(', ')} |`,
    );
  }
  lines.push('');
  return lines;
}

function schemaSection(name: string, schema: Node): string[] {
  const lines = [`### ${name}`, ''];
  const properties = schema.properties as Record<string, Node> | undefined;
  if (properties === undefined) {
    const pattern = typeof schema.pattern === 'string' ? `, pattern \`${schema.pattern}\`` : '';
    return [...lines, `${schemaName(schema)}${pattern}.`, ''];
  }
  const required = new Set((schema.required as string[] | undefined) ?? []);
  lines.push('| field | type | required | meaning |', '| --- | --- | --- | --- |');
  for (const [field, property] of Object.entries(properties)) {
    const values = property.enum as string[] | undefined;
    const meaning =
      values === undefined
        ? cell(property.description as string | undefined)
        : `one of ${values.map((value) => `\`${value}\``).join(', ')}`;
    lines.push(
      `| \`${field}\` | ${schemaName(property)} | ${required.has(field) ? 'yes' : 'no'} | ${meaning} |`,
    );
  }
  return [...lines, ''];
}

const methods = ['get', 'head', 'put', 'post', 'delete'];
const lines = [
  `<!-- Generated from docs/openapi.yaml by scripts/generate-api-docs.ts. Do not edit. -->`,
  '',
  `# ${spec.info.title} HTTP API (v${spec.info.version})`,
  '',
  spec.info.summary ?? '',
  '',
  (spec.info.description ?? '').trim(),
  '',
  'In Kubernetes the API is served at `http://<name>.<namespace>.svc:<port>` (port 8080 by',
  'default); the embedded default listens on `http://127.0.0.1:8080`. The machine-readable',
  'contract is [`openapi.yaml`](openapi.yaml).',
  '',
  '## Authentication',
  '',
  ...Object.entries(spec.components.securitySchemes ?? {}).map(
    ([name, scheme]) => `- \`${name}\`: ${scheme.description ?? ''}`,
  ),
  '',
  '## Calls',
  '',
];
for (const [path, item] of Object.entries(spec.paths)) {
  const shared = (item.parameters as Node[] | undefined) ?? [];
  for (const method of methods) {
    const operation = item[method] as Operation | undefined;
    if (operation !== undefined) lines.push(...operationSection(path, method, operation, shared));
  }
}
lines.push('## Schemas', '');
for (const [name, schema] of Object.entries(spec.components.schemas)) {
  lines.push(...schemaSection(name, schema));
}
const output = `${lines
  .join('\n')
  .replace(/\n{3,}/g, '\n\n')
  .trim()}\n`;

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(outputPath, 'utf8');
  } catch {
    // Missing counts as stale.
  }
  if (current !== output) {
    console.error('Generated files are stale: docs/api.md. Run: npm run generate');
    process.exit(1);
  }
} else {
  writeFileSync(outputPath, output);
}
