/**
 * Preloaded into a spawned data plane (`--expose-gc --import <this file>`) by tests that
 * measure memory: on SIGUSR2 it runs a full collection and prints the process's memory use
 * as one JSON line, so a test measures what is live rather than garbage an idle process has
 * not collected yet.
 */
const gc = (globalThis as { gc?: () => void }).gc;
process.on('SIGUSR2', () => {
  if (gc === undefined) throw new Error('The memory probe needs --expose-gc');
  gc();
  gc();
  const usage = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ message: 'Measured memory after a full collection', ...usage })}\n`,
  );
});
