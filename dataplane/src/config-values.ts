/** Parsing and range checks of single settings; the settings themselves are in config.ts. */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** A configuration error; the message always names the offending key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Kinds of values whose range each setting must declare. */
export type NumberKind = 'port' | 'bytes' | 'ms' | 'count';
type OtherKind = 'string' | 'level' | 'bool' | 'nodes' | 'durability';

/**
 * One setting: its key, its environment variable, its kind and, for numbers, the range it
 * accepts (inclusive). A value outside it stops the process with a message naming the
 * setting; `why` says what a value past the bound would break.
 */
export type Setting<Key extends string = string> = { key: Key; env: string } & (
  { kind: OtherKind } | { kind: NumberKind; min: number; max?: number; why?: string }
);

const DURABILITIES = ['WriteBehind', 'Sync'];
const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

const LEVELS = ['error', 'warn', 'info', 'debug'];
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  ki: 1024,
  m: MiB,
  mi: MiB,
  g: GiB,
  gi: GiB,
  t: TiB,
  ti: TiB,
};

type Value = string | number | boolean | string[];

function parseNumber(value: string, kind: NumberKind, name: string): number {
  switch (kind) {
    case 'port':
    case 'count':
    case 'ms':
      if (!/^\d+$/.test(value)) {
        const what = {
          port: 'a TCP port',
          count: 'a whole number',
          ms: 'a whole number of milliseconds',
        }[kind];
        throw new ConfigError(`${name} must be ${what}; got '${value}'`);
      }
      return Number(value);
    case 'bytes': {
      const match = /^(\d+)\s*([kmgt]i?)?b?$/i.exec(value);
      const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
      if (match?.[1] === undefined || unit === undefined) {
        throw new ConfigError(
          `${name} must be a size such as 1048576, 512Mi, 5Gi or 2Ti; got '${value}'`,
        );
      }
      return Number(match[1]) * unit;
    }
  }
}

function checkRange(
  number: number,
  setting: { kind: NumberKind; min: number; max?: number; why?: string },
  name: string,
  raw: string,
): number {
  const unit = setting.kind === 'ms' ? ' ms' : setting.kind === 'bytes' ? ' bytes' : '';
  const why = setting.why === undefined ? '' : ` (${setting.why})`;
  if (number < setting.min || (setting.max !== undefined && number > setting.max)) {
    const range =
      setting.max === undefined
        ? `at least ${setting.min}${unit}`
        : `from ${setting.min} to ${setting.max}${unit}`;
    throw new ConfigError(`${name} must be ${range}${why}; got '${raw}'`);
  }
  return number;
}

export function parseValue(raw: unknown, setting: Setting, name: string): Value {
  const text =
    typeof raw === 'number' || typeof raw === 'boolean'
      ? String(raw)
      : Array.isArray(raw)
        ? raw.join(',')
        : raw;
  if (typeof text !== 'string' || text.trim() === '') {
    throw new ConfigError(
      `${name} must be a non-empty ${setting.kind === 'string' ? 'string' : 'value'}`,
    );
  }
  const value = text.trim();
  switch (setting.kind) {
    case 'string':
      return value;
    case 'level':
      if (!LEVELS.includes(value))
        throw new ConfigError(`${name} must be one of ${LEVELS.join(', ')}; got '${value}'`);
      return value;
    case 'bool':
      if (!['true', 'false'].includes(value))
        throw new ConfigError(`${name} must be true or false; got '${value}'`);
      return value === 'true';
    case 'durability':
      if (!DURABILITIES.includes(value)) {
        throw new ConfigError(`${name} must be one of ${DURABILITIES.join(', ')}; got '${value}'`);
      }
      return value;
    case 'nodes': {
      const nodes = value.split(',').map((node) => node.trim());
      const bad = nodes.find((node) => !HOST_PORT.test(node));
      if (bad !== undefined)
        throw new ConfigError(
          `${name} must list host:port pairs separated by commas; '${bad}' is not one`,
        );
      return nodes;
    }
    default:
      return checkRange(parseNumber(value, setting.kind, name), setting, name, value);
  }
}
