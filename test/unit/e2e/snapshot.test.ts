import { expect } from 'chai';
import { splitRule } from '../../e2e/harness/firewall.ts';
import { differences, type MachineSnapshot } from '../../e2e/harness/snapshot.ts';

function snapshot(
  sysctls: Record<string, string>,
  lines: Record<string, string[]>,
): MachineSnapshot {
  return { sysctls, lines };
}

describe('End-to-end machine snapshot comparison', () => {
  it('finds nothing when the machine is as found', () => {
    const before = snapshot({ 'kernel.panic': '1' }, { mount: ['/ ext4 /dev/vda'] });
    expect(differences(before, structuredClone(before))).to.deep.equal([]);
  });

  it('reports changed sysctls and added or removed lines', () => {
    const before = snapshot(
      { 'kernel.panic': '1', 'net.ipv4.ip_forward': '0' },
      { 'iptables rule': ['filter :INPUT ACCEPT'], mount: ['/ ext4 /dev/vda', '/gone tmpfs x'] },
    );
    const after = snapshot(
      { 'kernel.panic': '10', 'net.ipv4.ip_forward': '0' },
      {
        'iptables rule': ['filter :INPUT ACCEPT', 'filter :KUBE-FIREWALL -'],
        mount: ['/ ext4 /dev/vda'],
      },
    );
    expect(differences(before, after)).to.have.members([
      'iptables rule added: filter :KUBE-FIREWALL -',
      'mount removed: /gone tmpfs x',
      'sysctl kernel.panic is 10, was 1',
    ]);
  });

  it('reports an interface left behind once, not each of its sysctls', () => {
    const before = snapshot(
      { 'net.ipv4.conf.eth0.forwarding': '0' },
      { 'network interface': ['eth0'] },
    );
    const after = snapshot(
      {
        'net.ipv4.conf.eth0.forwarding': '0',
        'net.ipv4.conf.bc-e2e-a.forwarding': '1',
        'net.ipv6.neigh.bc-e2e-a.locktime': '0',
      },
      { 'network interface': ['eth0', 'bc-e2e-a'] },
    );
    expect(differences(before, after)).to.deep.equal(['network interface added: bc-e2e-a']);
  });

  it("ignores a benchmark's modelled S3 link running beside it, and nothing else", () => {
    const before = snapshot({}, { 'network interface': ['eth0'], route: [] });
    const after = snapshot(
      { 'net.ipv4.conf.bcb4242h.forwarding': '0' },
      {
        'network interface': ['eth0', 'bcb4242h', 'bc-e2e-a'],
        address: ['bcb4242h inet 10.215.7.1', 'bc-e2e-a inet 10.213.1.1/24'],
        route: ['10.215.7.2 dev bcb4242h proto kernel scope link src 10.215.7.1'],
        mount: ['/run/netns/bcbench-4242 nsfs nsfs'],
        path: ['/run/netns/bcbench-4242'],
      },
    );
    expect(differences(before, after)).to.have.members([
      'network interface added: bc-e2e-a',
      'address added: bc-e2e-a inet 10.213.1.1/24',
    ]);
  });
});

describe('iptables rule splitting', () => {
  it('keeps quoted comments as one argument', () => {
    expect(
      splitRule('-A INPUT -m comment --comment "kubernetes \\"health\\" ports" -j KUBE-NODEPORTS'),
    ).to.deep.equal([
      '-A',
      'INPUT',
      '-m',
      'comment',
      '--comment',
      'kubernetes "health" ports',
      '-j',
      'KUBE-NODEPORTS',
    ]);
  });
});
