import { expect } from 'chai';
import { parseClusterNodes } from '../../../operator/src/redis/cluster-nodes.ts';
import { isUnreachable } from '../../../operator/src/redis/ioredis-admin.ts';

const REPLY = [
  '07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,redis-1-1 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected',
  '67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922',
  '292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10922-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]',
  'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7 [5460->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]',
  '6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 handshake,noaddr - 1426238316232 0 0 disconnected',
].join('\n');

describe('Redis admin helpers (pure)', () => {
  it('parse CLUSTER NODES, with hostnames, replicas and slots on the move', () => {
    const nodes = parseClusterNodes(REPLY);
    expect(nodes).to.have.length(5);
    expect(nodes[0]).to.include({
      address: '127.0.0.1:30004',
      hostname: 'redis-1-1',
      masterId: 'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca',
      connected: true,
    });
    expect(nodes[2]!.importing).to.deep.equal([
      { slot: 10922, from: '67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1' },
    ]);
    expect(nodes[3]!.flags).to.deep.equal(['myself', 'master']);
    expect(nodes[3]!.slots).to.deep.equal([
      [0, 5460],
      [7, 7],
    ]);
    expect(nodes[3]!.migrating).to.deep.equal([
      { slot: 5460, to: '292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f' },
    ]);
    expect(nodes[4]).to.include({ address: ':0', connected: false });
    expect(() => parseClusterNodes('abc')).to.throw(/Unexpected CLUSTER NODES line/);
  });

  it('tell unreachable nodes from nodes that answered with an error', () => {
    const cases: [string, boolean][] = [
      ['connect ECONNREFUSED 10.0.0.7:6379', true],
      ['connect ETIMEDOUT', true],
      ['read ECONNRESET', true],
      ['getaddrinfo ENOTFOUND redis-0', true],
      ['Connection is closed.', true],
      ['Command timed out', true],
      ['WRONGPASS invalid username-password pair or user is disabled.', false],
      ['ERR This instance has cluster support disabled', false],
    ];
    for (const [message, unreachable] of cases)
      expect(isUnreachable(new Error(message)), message).to.equal(unreachable);
  });
});
