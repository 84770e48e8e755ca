/**
 * A spec that can never work as written (the API server refuses a child built from it, or
 * it breaks a rule the schema cannot express). Reconciling it again cannot help: it is
 * recorded as Ready=False with `reason` and an Event, and not retried until the spec changes.
 */
export class TerminalError extends Error {
  readonly reason: string;
  constructor(message: string, options: { reason?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'TerminalError';
    this.reason = options.reason ?? 'InvalidSpec';
  }
}

/**
 * True when the API server refused an object as invalid (422) or malformed (400): for a
 * child built purely from the spec, sending it again cannot succeed.
 */
export function isSpecRejection(code: number | undefined): boolean {
  return code === 422 || code === 400;
}
