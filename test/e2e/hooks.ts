/**
 * Root hooks of the end-to-end tier (mocha --require): one cluster for the whole run,
 * brought up before the first scenario and torn down after the last, where the machine is
 * compared with its state before the bring-up (a difference fails the run).
 */
import type { Context } from 'mocha';
import { bringUp, tearDown } from './harness/cluster.ts';

export const mochaHooks = {
  async beforeAll(this: Context): Promise<void> {
    // Includes waiting for another run holding the machine (see cluster.ts).
    this.timeout(40 * 60_000);
    await bringUp();
  },
  async afterAll(this: Context): Promise<void> {
    this.timeout(10 * 60_000);
    await tearDown();
  },
};
