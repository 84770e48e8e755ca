import { expect } from 'chai';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { text } from 'node:stream/consumers';
import {
  CacheFullError,
  CopyUnderWayError,
  MemoryLruStore,
} from '../../../dataplane/src/backends/memory-lru.ts';
import { BlobTooLargeError, DigestMismatchError } from '../../../dataplane/src/blob/errors.ts';
import { md5 } from '../../harness/blobs.ts';

const put = (store: MemoryLruStore, value: string, key = md5(value)) =>
  store.put(
    Readable.from([Buffer.from(value.slice(0, 2)), Buffer.from(value.slice(2))], {
      objectMode: false,
    }),
    { key },
  );

describe('MemoryLruStore', () => {
  it('stores verified blobs and serves whole blobs and ranges across chunk borders', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 50 });
    expect(await put(store, 'abcdefgh')).to.deep.include({ created: true });
    const whole = await store.get(md5('abcdefgh'));
    expect(await text(whole!.stream)).to.equal('abcdefgh');
    const range = await store.get(md5('abcdefgh'), { start: 1, end: 4 });
    expect(await text(range!.stream)).to.equal('bcde');
    expect((await put(store, 'abcdefgh')).created).to.be.false;
  });

  it('evicts the least recently used blob past its byte budget', async () => {
    const store = new MemoryLruStore({ maxBytes: 20, maxEntryBytes: 10 });
    await put(store, 'aaaaaaaaaa');
    await put(store, 'bbbbbbbbbb');
    (await store.get(md5('aaaaaaaaaa')))!.release!();
    await put(store, 'cccccccccc');
    expect(await store.head(md5('bbbbbbbbbb'))).to.equal(null);
    expect(await store.head(md5('aaaaaaaaaa'))).to.not.equal(null);
    expect(store.stats()).to.deep.equal({ bytes: 20, blobs: 2, evictions: 1 });
  });

  it('keeps least-recently-used order while the most recent blob is read again and again', async () => {
    const store = new MemoryLruStore({ maxBytes: 30, maxEntryBytes: 10 });
    for (const value of ['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc']) await put(store, value);
    const read = (value: string): void => store.peek(md5(value))!.release!();
    for (let i = 0; i < 5; i++) read('cccccccccc');
    read('aaaaaaaaaa');
    read('bbbbbbbbbb');
    await put(store, 'dddddddddd');
    // c, read last before a and b, is the least recently used now.
    expect(await store.head(md5('cccccccccc'))).to.equal(null);
    for (const value of ['aaaaaaaaaa', 'bbbbbbbbbb', 'dddddddddd'])
      expect(await store.head(md5(value))).to.not.equal(null);
    // The most recent blob deleted, then a read and a new blob: each becomes the most recent.
    await store.delete(md5('dddddddddd'));
    read('aaaaaaaaaa');
    await put(store, 'eeeeeeeeee');
    read('aaaaaaaaaa');
    await put(store, 'ffffffffff');
    await put(store, 'gggggggggg');
    for (const value of ['bbbbbbbbbb', 'eeeeeeeeee'])
      expect(await store.head(md5(value))).to.equal(null);
    for (const value of ['aaaaaaaaaa', 'ffffffffff', 'gggggggggg'])
      expect(await store.head(md5(value))).to.not.equal(null);
  });

  it('serves a whole blob as the chunks it stored, and ranges as slices of them', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 50 });
    await put(store, 'abcdefgh');
    const whole = store.peek(md5('abcdefgh'))!;
    expect(Buffer.concat(whole.chunks!).toString()).to.equal('abcdefgh');
    expect(whole.chunks!.map((chunk) => chunk.toString())).to.deep.equal(['ab', 'cdefgh']);
    const range = store.peek(md5('abcdefgh'), { start: 1, end: 2 })!;
    expect(range.chunks!.map((chunk) => chunk.toString())).to.deep.equal(['b', 'c']);
    whole.release!();
    range.release!();
  });

  it('keeps its own copy of a chunk that is a small view into a larger buffer', async () => {
    const store = new MemoryLruStore({ maxBytes: 1 << 20, maxEntryBytes: 1 << 20 });
    // The short last piece of a read in 64 KiB pieces: 4 KiB of a 64 KiB buffer.
    const piece = Buffer.allocUnsafeSlow(64 * 1024).fill(7);
    const small = piece.subarray(0, 4096);
    // A whole 64 KiB piece is kept as it came.
    const whole = Buffer.allocUnsafeSlow(64 * 1024).fill(9);
    for (const chunk of [small, whole]) {
      await store.put(Readable.from([chunk], { objectMode: false }), { key: md5(chunk) });
      const read = store.peek(md5(chunk))!;
      expect(Buffer.concat(read.chunks!).equals(chunk)).to.equal(true);
      expect(read.chunks![0]!.buffer.byteLength).to.equal(chunk.length);
      expect(read.chunks![0] === chunk, 'the same buffer').to.equal(chunk === whole);
      read.release!();
    }
  });

  it('refuses blobs over its entry limit and bytes that do not match the key', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 4 });
    await put(store, 'abcdefgh').then(
      () => expect.fail('stored an oversized blob'),
      (error: unknown) => expect(error).to.be.instanceOf(BlobTooLargeError),
    );
    await put(store, 'abc', md5('xyz')).then(
      () => expect.fail('stored a mismatching blob'),
      (error: unknown) => expect(error).to.be.instanceOf(DigestMismatchError),
    );
    expect(store.stats().blobs).to.equal(0);
  });

  it('deletes', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 50 });
    await put(store, 'xy');
    expect(await store.delete(md5('xy'))).to.be.true;
    expect(await store.delete(md5('xy'))).to.be.false;
    expect(store.stats().bytes).to.equal(0);
  });

  it('keeps counting an evicted blob while a reader holds it, and caches nothing past the budget', async () => {
    const store = new MemoryLruStore({ maxBytes: 20, maxEntryBytes: 10 });
    await put(store, 'aaaaaaaaaa');
    await put(store, 'bbbbbbbbbb');
    const readA = store.peek(md5('aaaaaaaaaa'))!;
    const readB = store.peek(md5('bbbbbbbbbb'))!;
    // Both pinned: a third blob finds no room and is not cached; nothing was evicted.
    const error = await put(store, 'cccccccccc').catch((e: unknown) => e as Error);
    expect(error).to.be.instanceOf(CacheFullError);
    expect(store.stats()).to.deep.include({ bytes: 20, blobs: 2 });
    // Deleted while read: gone from the map, still counted until released.
    await store.delete(md5('aaaaaaaaaa'));
    expect(store.stats()).to.deep.include({ bytes: 20, blobs: 1 });
    expect(Buffer.concat(readA.chunks!).toString()).to.equal('aaaaaaaaaa');
    readA.release!();
    readA.release!();
    expect(store.stats()).to.deep.include({ bytes: 10, blobs: 1 });
    expect((await put(store, 'cccccccccc')).created).to.be.true;
    readB.release!();
    expect(store.stats().bytes).to.equal(20);
  });

  it('releases a read served as a stream when the stream closes', async () => {
    const store = new MemoryLruStore({ maxBytes: 10, maxEntryBytes: 10 });
    await put(store, 'aaaaaaaaaa');
    const read = store.peek(md5('aaaaaaaaaa'))!;
    await store.delete(md5('aaaaaaaaaa'));
    expect(store.stats().bytes).to.equal(10);
    expect(await text(read.stream)).to.equal('aaaaaaaaaa');
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.stats().bytes).to.equal(0);
  });

  it('counts every byte a put holds from its arrival, and gives them back when the put fails', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 50 });
    const source = new PassThrough();
    const putting = store.put(source, { key: md5('abcdefghij') });
    source.write('abcde');
    source.write('fgh');
    await nextTurn();
    // The verifier holds the last chunk back; it is counted all the same.
    expect(store.stats().bytes).to.equal(8);
    source.destroy(new Error('the reader went away'));
    await putting.then(
      () => expect.fail('kept a copy that was cut short'),
      (error: unknown) => expect(error).to.have.property('message', 'the reader went away'),
    );
    expect(store.stats()).to.deep.include({ bytes: 0, blobs: 0 });
  });

  it('copies a blob in once: a put of a key another put is copying in fails at once', async () => {
    const store = new MemoryLruStore({ maxBytes: 100, maxEntryBytes: 50 });
    const source = new PassThrough();
    const first = store.put(source, { key: md5('abcdefgh') });
    source.write('abcd');
    await put(store, 'abcdefgh').then(
      () => expect.fail('made a second copy'),
      (error: unknown) => expect(error).to.be.instanceOf(CopyUnderWayError),
    );
    expect(store.stats().bytes).to.equal(4);
    source.end('efgh');
    expect((await first).created).to.be.true;
    // Once that copy is done, the key is no longer being copied.
    expect((await put(store, 'abcdefgh')).created).to.be.false;
    expect(store.stats()).to.deep.include({ bytes: 8, blobs: 1 });
  });

  it('refuses a blob declared larger than its entry limit without evicting anything', async () => {
    const store = new MemoryLruStore({ maxBytes: 20, maxEntryBytes: 10 });
    await put(store, 'aaaaaaaaaa');
    await put(store, 'bbbbbbbbbb');
    const large = 'cccccccccccc';
    await store
      .put(Readable.from([Buffer.from(large)], { objectMode: false }), {
        key: md5(large),
        size: large.length,
      })
      .then(
        () => expect.fail('stored an oversized blob'),
        (error: unknown) => expect(error).to.be.instanceOf(BlobTooLargeError),
      );
    expect(store.stats()).to.deep.equal({ bytes: 20, blobs: 2, evictions: 0 });
  });
});
