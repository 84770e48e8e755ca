import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pidsUnderRunDir } from '../harness/cleanup.ts';
import { bringUp, tearDown } from '../harness/cluster.ts';
import { differences, takeSnapshot } from '../harness/snapshot.ts';

describe('An end-to-end run killed mid-way', function () {
  this.timeout(600_000);

  it('is cleaned up by the next run, which leaves the machine as found', async () => {
    const before = takeSnapshot();
    const crashing = spawn(
      process.execPath,
      [fileURLToPath(new URL('crashing-run.ts', import.meta.url))],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = once(crashing, 'exit');
    for await (const line of createInterface({ input: crashing.stdout })) {
      if (line === 'up') break;
    }
    crashing.kill('SIGKILL');
    await exited;
    // What a crash leaves: the cluster's processes and Pods, interfaces, rules, mounts.
    expect(pidsUnderRunDir()).to.not.be.empty;
    expect(differences(before, takeSnapshot())).to.not.be.empty;

    await bringUp();
    await tearDown();
    expect(pidsUnderRunDir()).to.be.empty;
    expect(differences(before, takeSnapshot())).to.deep.equal([]);
  });
});
