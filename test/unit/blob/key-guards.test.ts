import { expect } from 'chai';
import { KeyGuards } from '../../../dataplane/src/blob/key-guards.ts';

describe('KeyGuards', () => {
  it('marks only operations under way on that key', () => {
    const guards = new KeyGuards();
    const a = guards.enter('k');
    const b = guards.enter('other');
    guards.markDeleted('k');
    const later = guards.enter('k');
    expect([a.deleted, b.deleted, later.deleted]).to.deep.equal([true, false, false]);
    a.leave();
    b.leave();
    later.leave();
    guards.markDeleted('k');
    expect(later.deleted).to.be.false;
  });
});
