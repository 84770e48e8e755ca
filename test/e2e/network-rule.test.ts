import { expect } from 'chai';
import { cluster } from './harness/cluster.ts';
import { networkRuleDrops } from './harness/firewall.ts';
import { HOST_ADDRESS } from './harness/layout.ts';
import { clientPod, useNamespace, waitPodReady } from './harness/scenario.ts';

/**
 * TEST-NET-3 (RFC 5737): documentation only, routed nowhere. Not TEST-NET-1, which may be
 * the machine's own uplink subnet.
 */
const OUTSIDE = '203.0.113.1';

describe('The network rule: Pods reach nothing beyond the harness', function () {
  this.timeout(120_000);
  const namespace = useNamespace('network-rule');

  before(async function () {
    this.timeout(120_000);
    await cluster().kubectl.apply(clientPod(namespace.name, 'client'));
    await waitPodReady(namespace.name, 'client');
  });

  it("drops a Pod's connection to an outside address in the harness's rule", async () => {
    const before = networkRuleDrops();
    expect(before, 'the rule is installed').to.be.a('number');
    const output = await cluster().kubectl.exec(namespace.name, 'client', [
      'sh',
      '-c',
      `curl --silent --max-time 3 http://${OUTSIDE}/; echo "exit $?"`,
    ]);
    // 28: timed out. Refused or unreachable (7) would mean something answered.
    expect(output.trim()).to.equal('exit 28');
    expect(networkRuleDrops()).to.be.greaterThan(before!);
  });

  it('resolves through the harness DNS only, which answers no name outside the cluster', async () => {
    const { kubectl } = cluster();
    const resolvConf = await kubectl.exec(namespace.name, 'client', ['cat', '/etc/resolv.conf']);
    const servers = resolvConf
      .split('\n')
      .filter((line) => line.startsWith('nameserver'))
      .map((line) => line.split(/\s+/)[1]);
    expect(servers).to.deep.equal([HOST_ADDRESS]);
    const output = await kubectl.exec(namespace.name, 'client', [
      'sh',
      '-c',
      'nslookup -type=a example.com; echo "exit $?"',
    ]);
    // CoreDNS has no forwarder: a zone it does not serve is refused, never looked up.
    expect(output).to.include("can't find example.com: REFUSED");
    expect(output.trim().endsWith('exit 1')).to.be.true;
  });
});
