/**
 * True when `live` has every field `desired` sets, with the same value (arrays element by
 * element, same length). What the API server adds (defaults, status, other managers'
 * fields) is ignored, so an object that already is as the operator wants it compares equal.
 */
export function contains(live: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (desired === null || typeof desired !== 'object') return live === desired;
  if (Array.isArray(desired)) {
    return (
      Array.isArray(live) &&
      live.length === desired.length &&
      desired.every((item, index) => contains(live[index], item))
    );
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
  const record = live as Record<string, unknown>;
  return Object.entries(desired).every(([key, value]) => contains(record[key], value));
}
