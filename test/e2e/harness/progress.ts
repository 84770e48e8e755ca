/** Progress lines of the end-to-end harness, printed between mocha's own. */

export function log(message: string): void {
  console.log(`    [e2e] ${message}`);
}

/** Runs `action` and logs how long it took. */
export async function timed<T>(what: string, action: () => Promise<T> | T): Promise<T> {
  const started = Date.now();
  const result = await action();
  log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}
