import { expect } from 'chai';
import { configChecksum, consumedSecrets } from '../../../operator/src/resources/checksum.ts';
import { blobCache } from './fixtures.ts';

describe('config checksum', () => {
  const config = { kind: 'ConfigMap' as const, name: 'c-config', data: { A: '1', B: '2' } };
  const secret = { kind: 'Secret' as const, name: 'c-redis', data: { password: 'cHc=' } };

  it('does not depend on the order of inputs or of keys', () => {
    expect(configChecksum([config, secret])).to.equal(
      configChecksum([secret, { ...config, data: { B: '2', A: '1' } }]),
    );
  });

  it('changes when any consumed value changes, or a Secret appears', () => {
    const base = configChecksum([config, secret]);
    expect(configChecksum([{ ...config, data: { A: '1', B: '3' } }, secret])).to.not.equal(base);
    expect(configChecksum([config, { ...secret, data: { password: 'eHg=' } }])).to.not.equal(base);
    expect(configChecksum([config, { ...secret, data: null }])).to.not.equal(
      configChecksum([config, { ...secret, data: {} }]),
    );
  });

  it("names every Secret a tier's pods read", () => {
    expect(consumedSecrets(blobCache())).to.deep.equal({
      http: ['c-api-tokens', 'c-redis'],
      redis: ['c-redis'],
    });
    expect(
      consumedSecrets(
        blobCache({
          http: { authSecretName: 'tokens' },
          store: { s3: { bucket: 'b', credentialsSecretName: 's3' } },
        }),
      ).http,
    ).to.deep.equal(['tokens', 'c-redis', 's3']);
  });
});
