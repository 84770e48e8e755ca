import { createHash } from 'node:crypto';

/**
 * Wang and Yu's published MD5 collision (2004): two different 128-byte blocks with the MD5
 * 79054025255fb1a26e4bc422aef54eb4. Checked when loaded, so a typo fails loudly.
 */
export const COLLIDING_MD5 = '79054025255fb1a26e4bc422aef54eb4';

export const COLLIDING_PAIR: readonly [Buffer, Buffer] = [
  Buffer.from(
    'd131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f89' +
      '55ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5b' +
      'd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0' +
      'e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70',
    'hex',
  ),
  Buffer.from(
    'd131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f89' +
      '55ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5b' +
      'd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0' +
      'e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70',
    'hex',
  ),
];

for (const block of COLLIDING_PAIR) {
  const md5 = createHash('md5').update(block).digest('hex');
  if (block.length !== 128 || md5 !== COLLIDING_MD5) {
    throw new Error(`The colliding pair is mistyped: a block hashes to ${md5}`);
  }
}
if (COLLIDING_PAIR[0].equals(COLLIDING_PAIR[1])) throw new Error('The colliding blocks are equal');
