import { expect } from 'chai';
import { ByteLedger } from '../../../dataplane/src/local/byte-ledger.ts';

function ledger(maxBytes: number): { ledger: ByteLedger<string>; evicted: string[] } {
  const evicted: string[] = [];
  return {
    ledger: new ByteLedger<string>({ maxBytes, onEvict: (key) => evicted.push(key) }),
    evicted,
  };
}

describe("ByteLedger (the local tier's LRU accounting)", () => {
  it('evicts least recently used entries to make room, and counts what stays', () => {
    const { ledger: l, evicted } = ledger(100);
    for (const key of ['a', 'b', 'c']) {
      expect(l.reserve(40)).to.equal(true);
      l.add(key, 40, key);
    }
    // Reserving c's 40 bytes took the total to 120: a, the least recently used, went.
    expect(evicted).to.deep.equal(['a']);
    expect(l.stats()).to.deep.equal({ bytes: 80, entries: 2, evictions: 1 });
    l.get('b'); // b is now the most recently used: c goes next
    expect(l.reserve(30)).to.equal(true);
    expect(evicted).to.deep.equal(['a', 'c']);
    expect(l.keys()).to.deep.equal(['b']);
    expect(l.stats().bytes).to.equal(70);
  });

  it('refuses a reservation it cannot make room for, without evicting anything', () => {
    const { ledger: l, evicted } = ledger(100);
    l.reserve(60);
    l.add('a', 60, 'a');
    const release = l.pin('a')!;
    expect(l.reserve(50), 'a is being read: nothing can be freed').to.equal(false);
    expect(evicted).to.deep.equal([]);
    expect(l.stats().bytes).to.equal(60);
    expect(l.reserve(101), 'larger than the bound').to.equal(false);
    release();
    expect(l.reserve(50)).to.equal(true);
    expect(evicted).to.deep.equal(['a']);
    expect(l.stats().bytes).to.equal(50);
  });

  it('keeps counting a removed entry until its last reader lets go', () => {
    const { ledger: l } = ledger(100);
    l.reserve(30);
    l.add('a', 30, 'a');
    const first = l.pin('a')!;
    const second = l.pin('a')!;
    expect(l.remove('a')).to.equal('a');
    expect(l.has('a')).to.equal(false);
    expect(l.stats()).to.deep.equal({ bytes: 30, entries: 0, evictions: 0 });
    first();
    first(); // a second call changes nothing
    expect(l.stats().bytes).to.equal(30);
    second();
    expect(l.stats().bytes).to.equal(0);
  });

  it('gives back an unused reservation, and replacing an entry does not count it twice', () => {
    const { ledger: l } = ledger(100);
    l.reserve(40);
    l.unreserve(40);
    expect(l.stats().bytes).to.equal(0);
    l.reserve(40);
    l.add('a', 40, 'first');
    l.reserve(40);
    l.add('a', 40, 'second');
    expect(l.peek('a')).to.equal('second');
    expect(l.stats()).to.deep.equal({ bytes: 40, entries: 1, evictions: 0 });
  });
});
