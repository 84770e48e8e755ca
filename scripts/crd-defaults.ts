/**
 * Generates `withDefaults(spec)` and the defaulted spec types from the CRD's schema: every
 * field with a `default:` becomes present (required in the type), objects are defaulted
 * recursively the way the API server does (a parent's default first, then its fields').
 */
export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: (string | number)[];
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

export function pascal(parts: string[]): string {
  return parts.map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join('');
}

/** True when some field below `schema` has a default (the schema's own default aside). */
function defaultsInside(schema: Schema): boolean {
  if (schema.items !== undefined && hasDefaults(schema.items)) {
    throw new Error('defaults inside array items are not supported by the generator');
  }
  return Object.values(schema.properties ?? {}).some(hasDefaults);
}

function hasDefaults(schema: Schema): boolean {
  return schema.default !== undefined || defaultsInside(schema);
}

/** The TypeScript type scripts/generate-crd-types.ts gives a field (same names). */
function tsType(schema: Schema, path: string[]): string {
  if (schema.enum !== undefined) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.type === 'object')
    return schema.properties === undefined ? 'Record<string, unknown>' : pascal(path);
  if (schema.type === 'array') return `${tsType(schema.items ?? {}, path)}[]`;
  return schema.type === 'integer' || schema.type === 'number'
    ? 'number'
    : (schema.type ?? 'unknown');
}

export function generateDefaults(spec: Schema, specPath: string[]): string {
  const imports = new Set<string>();
  const interfaces: string[] = [];
  const functions: string[] = [];

  const visit = (schema: Schema, path: string[]): string => {
    const base = pascal(path);
    const name = `Defaulted${base}`;
    imports.add(base);
    const required = new Set(schema.required ?? []);
    const fields: string[] = [];
    const values: string[] = [];
    // Optional objects without a default are taken out of `value`, so that an absent one
    // stays absent (not `undefined`) and a present one is replaced by its defaulted copy.
    const separate: string[] = [];
    for (const [field, child] of Object.entries(schema.properties ?? {})) {
      const childPath = [...path, field];
      const nested = child.type === 'object' && defaultsInside(child);
      if (!nested && child.default === undefined) continue;
      const type = nested ? visit(child, childPath) : tsType(child, childPath);
      const literal = JSON.stringify(child.default);
      if (nested) {
        const call = (arg: string) => `default${pascal(childPath)}(${arg})`;
        if (child.default !== undefined) {
          fields.push(`  ${field}: ${type};`);
          values.push(`    ${field}: ${call(`value.${field} ?? ${literal}`)},`);
        } else if (required.has(field)) {
          fields.push(`  ${field}: ${type};`);
          values.push(`    ${field}: ${call(`value.${field}`)},`);
        } else {
          fields.push(`  ${field}?: ${type};`);
          separate.push(field);
          values.push(`    ...(${field} === undefined ? {} : { ${field}: ${call(field)} }),`);
        }
      } else {
        fields.push(`  ${field}: ${type};`);
        values.push(`    ${field}: value.${field} ?? ${literal},`);
      }
    }
    interfaces.push(
      `/** ${base} with the CRD's defaults applied. */\nexport interface ${name} extends ${base} {\n${fields.join('\n')}\n}\n`,
    );
    functions.push(
      `function default${base}(${separate.length === 0 ? 'value' : `{ ${separate.join(', ')}, ...value }`}: ${base}): ${name} {\n  return {\n    ...value,\n${values.join('\n')}\n  };\n}\n`,
    );
    return name;
  };

  const top = visit(spec, specPath);
  imports.add(pascal(specPath.slice(0, -1)));
  return `import type { ${[...imports].sort().join(', ')} } from './types.generated.ts';

${interfaces.reverse().join('\n')}
/**
 * The spec with every default of the CRD filled in where a field is absent, as the API
 * server stores it. The CRD's \`default:\` values are the only source of defaults; use this
 * instead of fallbacks in code. Pure: the argument is not changed.
 */
export function withDefaults(spec: ${pascal(specPath)}): ${top} {
  return default${pascal(specPath)}(spec);
}

/** A ${pascal(specPath.slice(0, -1))} whose spec has every default filled in. */
export type Defaulted${pascal(specPath.slice(0, -1))} = Omit<${pascal(specPath.slice(0, -1))}, 'spec'> & { spec: ${top} };

/** The object with its spec defaulted (see withDefaults). */
export function defaulted(object: ${pascal(specPath.slice(0, -1))}): Defaulted${pascal(specPath.slice(0, -1))} {
  return { ...object, spec: withDefaults(object.spec) };
}

${functions.reverse().join('\n')}`;
}
