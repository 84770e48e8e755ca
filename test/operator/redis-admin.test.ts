import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { slotCount, type RedisAdmin } from '../../operator/src/redis/admin.ts';
import { makeRedisAdmin } from '../../operator/src/redis/ioredis-admin.ts';
import { eventually } from '../harness/eventually.ts';
import { freePorts, startRedisCluster, type RedisClusterHandle } from '../harness/services.ts';

describe('the operator RedisAdmin against a real Redis Cluster', function () {
  this.timeout(60_000);
  let dir: string;
  let cluster: RedisClusterHandle;
  let admin: RedisAdmin;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blobcache-admin-'));
    cluster = await startRedisCluster({ dir, maxMemory: '64mb' });
    admin = makeRedisAdmin({ timeoutMs: 2_000 });
  });
  after(async () => {
    await admin?.close();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const endpoint = (port: number) => ({ host: '127.0.0.1', port });

  it("reads a node's view of the cluster: every member, its role and its slots", async () => {
    const port = cluster.nodes[0]!.port;
    const view = (await admin.clusterNodes(endpoint(port)))!;
    expect(view).to.have.length(6);
    const myself = view.filter((node) => node.flags.includes('myself'));
    expect(myself.map((node) => node.address)).to.deep.equal([`127.0.0.1:${port}`]);
    const masters = view.filter((node) => node.flags.includes('master'));
    expect(masters).to.have.length(3);
    expect(masters.reduce((sum, node) => sum + slotCount(node.slots), 0)).to.equal(16_384);
    const replicas = view.filter((node) => node.flags.includes('slave'));
    expect(replicas.map((node) => node.masterId)).to.have.members(masters.map((node) => node.id));
  });

  it('answers null for a node that cannot be reached, and throws for one that answers with an error', async () => {
    const closed = await freePorts(1);
    expect(await admin.clusterNodes(endpoint(closed))).to.equal(null);
    // A node of its own with a password, as the operator's Redis pods have.
    const port = await freePorts(1, true);
    const settings = { port, bind: '127.0.0.1', requirepass: 'secret', dir };
    const node = spawn(
      'redis-server',
      [
        ...Object.entries(settings).flatMap(([key, value]) => [`--${key}`, String(value)]),
        ...['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`],
      ],
      { stdio: 'ignore' },
    );
    try {
      const answered = () => admin.clusterNodes({ ...endpoint(port), password: 'secret' });
      await eventually('the password-protected node', async () => (await answered())?.length === 1);
      const failure = await admin
        .clusterNodes({ ...endpoint(port), password: 'not-the-password' })
        .then(
          () => null,
          (error: Error) => error,
        );
      expect(failure?.message).to.match(/refused CLUSTER NODES/);
      expect(String((failure?.cause as Error | undefined)?.message)).to.match(/WRONGPASS/);
      expect(await answered()).to.have.length(1);
    } finally {
      node.kill('SIGKILL');
      await new Promise((resolve) => node.once('exit', resolve));
    }
  });
});
