import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { validateBlobCache } from '../../../operator/src/controller/phases/validate.ts';
import { desiredChildren } from '../../../operator/src/resources/desired.ts';
import { MAX_NAME_LENGTH, names } from '../../../operator/src/resources/names.ts';
import { generatedSecrets } from '../../../operator/src/resources/secrets.ts';
import { blobCache, CHECKSUMS } from './fixtures.ts';

describe('derived names', () => {
  const longest = `a${'b'.repeat(MAX_NAME_LENGTH - 1)}`;

  it('stay within Kubernetes limits for the longest name the CRD admits, at 64 shards', () => {
    const cache = blobCache({ redis: { shards: 64 } }, longest);
    const objects = [...desiredChildren(cache, CHECKSUMS), ...generatedSecrets(cache)];
    for (const object of objects) {
      const name = object.metadata!.name!;
      // Services must be DNS-1035 labels; everything else at most a DNS subdomain.
      expect(name.length, name).to.be.at.most(object.kind === 'Service' ? 63 : 253);
      for (const value of Object.values(object.metadata!.labels ?? {}))
        expect(value.length, value).to.be.at.most(63);
    }
    // StatefulSet pods are labelled controller-revision-hash=<statefulset>-<up to 10 chars>,
    // and their hostnames are <statefulset>-<ordinal>.
    const statefulSet = names.redisShard(longest, 63);
    expect(`${statefulSet}-${'h'.repeat(10)}`.length).to.be.at.most(63);
  });

  it('match the limit the CRD states', () => {
    const crd = readFileSync(
      new URL('../../../crds/blobcache.io_blobcaches.yaml', import.meta.url),
      'utf8',
    );
    expect(crd).to.contain(`size(self.metadata.name) <= ${MAX_NAME_LENGTH}`);
    expect(crd).to.contain(`must be at most ${MAX_NAME_LENGTH} characters:`);
    expect(crd).to.contain("pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$'");
  });

  it('are refused as terminal when the CRD in place does not check them', () => {
    expect(() => validateBlobCache(blobCache({}, `${longest}x`))).to.throw(
      `metadata.name must be at most ${MAX_NAME_LENGTH} characters, got ${MAX_NAME_LENGTH + 1}`,
    );
    for (const bad of ['a.b', '1cache', 'Cache', 'cache-'])
      expect(() => validateBlobCache(blobCache({}, bad)), bad).to.throw(/DNS-1035 label/);
    expect(() => validateBlobCache(blobCache({}, longest))).not.to.throw();
  });
});
